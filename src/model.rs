//! The domain both architectures serve: a user and a shopping cart.
//!
//! Validation lives here so the stateless and the stateful servers accept and
//! refuse exactly the same inputs.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Longest accepted user name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest accepted SKU, in bytes.
pub const MAX_SKU_LEN: usize = 64;
/// Most distinct SKUs one cart may hold.
pub const MAX_CART_ITEMS: usize = 256;
/// Largest quantity one line of a cart may reach.
pub const MAX_QTY: u32 = 1_000_000;

/// The user of the classic example.
pub const DEFAULT_USER_ID: u64 = 1;
pub const DEFAULT_USER_NAME: &str = "John Doe";

/// Body of `POST /login`; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub id: Option<u64>,
    pub name: Option<CompactString>,
}

/// Who is logged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    /// Inline up to 24 bytes (no allocation for typical names).
    pub name: CompactString,
}

impl Default for User {
    fn default() -> Self {
        Self {
            id: DEFAULT_USER_ID,
            name: CompactString::const_new(DEFAULT_USER_NAME),
        }
    }
}

/// One line of a cart; also the body of `POST /cart/items`. The default
/// (an empty body) is not a valid item: it fails [`CartItem::validate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartItem {
    /// Inline up to 24 bytes.
    pub sku: CompactString,
    pub qty: u32,
}

/// A cart: distinct SKUs in the order they were first added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cart(pub Vec<CartItem>);

/// Why a request's input was refused (answered with 400, or 413 for size).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("invalid JSON body: {0}")]
    Json(String),
    #[error("name must be 1 to {MAX_NAME_LEN} bytes")]
    Name,
    #[error("sku must be 1 to {MAX_SKU_LEN} bytes")]
    Sku,
    #[error("qty must be 1 to {MAX_QTY}")]
    Qty,
    #[error("cart is full ({MAX_CART_ITEMS} distinct items)")]
    CartFull,
}

/// Parses an optional JSON body; an empty body means "all defaults".
pub fn parse_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, InputError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| InputError::Json(e.to_string()))
}

impl LoginRequest {
    /// The user this login creates.
    pub fn into_user(self) -> Result<User, InputError> {
        let name = match self.name {
            Some(n) if n.is_empty() || n.len() > MAX_NAME_LEN => return Err(InputError::Name),
            Some(n) => n,
            None => CompactString::const_new(DEFAULT_USER_NAME),
        };
        Ok(User {
            id: self.id.unwrap_or(DEFAULT_USER_ID),
            name,
        })
    }
}

impl CartItem {
    pub fn validate(&self) -> Result<(), InputError> {
        if self.sku.is_empty() || self.sku.len() > MAX_SKU_LEN {
            return Err(InputError::Sku);
        }
        if self.qty == 0 || self.qty > MAX_QTY {
            return Err(InputError::Qty);
        }
        Ok(())
    }
}

impl Cart {
    /// Adds `item` (already validated): an existing SKU's quantity grows,
    /// saturating at [`MAX_QTY`]; a new SKU is appended.
    pub fn add(&mut self, item: CartItem) -> Result<(), InputError> {
        if let Some(line) = self.0.iter_mut().find(|l| l.sku == item.sku) {
            line.qty = line.qty.saturating_add(item.qty).min(MAX_QTY);
            return Ok(());
        }
        if self.0.len() >= MAX_CART_ITEMS {
            return Err(InputError::CartFull);
        }
        // Grow by exactly one: carts are small and long-lived, and the
        // spare capacity of doubling would be paid by every stored session.
        self.0.reserve_exact(1);
        self.0.push(item);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The body of `GET /cart`, identical on both architectures.
#[derive(Debug, Serialize)]
pub struct CartView<'a> {
    pub items: &'a [CartItem],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_merges_same_sku_and_caps_distinct_items() {
        let mut cart = Cart::default();
        let item = |s: &str, q| CartItem {
            sku: s.into(),
            qty: q,
        };
        cart.add(item("a", 1)).unwrap();
        cart.add(item("a", 2)).unwrap();
        assert_eq!(cart.0, vec![item("a", 3)]);
        cart.add(item("a", MAX_QTY)).unwrap();
        assert_eq!(cart.0[0].qty, MAX_QTY);
        for i in 1..MAX_CART_ITEMS {
            cart.add(item(&format!("s{i}"), 1)).unwrap();
        }
        assert_eq!(cart.add(item("new", 1)), Err(InputError::CartFull));
        assert_eq!(cart.len(), MAX_CART_ITEMS);
    }

    #[test]
    fn empty_body_is_default_and_bad_json_is_one_line() {
        let r: LoginRequest = parse_body(b"").unwrap();
        assert_eq!(r.into_user().unwrap(), User::default());
        let err = parse_body::<LoginRequest>(b"{\"name\": ").unwrap_err();
        assert!(matches!(err, InputError::Json(_)));
        assert!(!err.to_string().contains('\n'));
        assert_eq!(
            parse_body::<LoginRequest>(br#"{"name":""}"#)
                .unwrap()
                .into_user(),
            Err(InputError::Name)
        );
    }
}
