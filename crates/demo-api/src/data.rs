//! The shop's data: deterministic seeded orders, order items, products, customers and events,
//! the queries the routes run over them, and the mutations tests use.
//!
//! Orders are indexed by `(updated_at, id)`, the API's sort order, so a cursor page is a range
//! scan that stays correct when records are inserted or updated between pages.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// 2024-01-02T00:00:00Z: the first seeded order is created on that day.
const BASE: i64 = 1_704_153_600;
/// Seeded orders are spread over 180 days.
const SPAN: i64 = 180 * 86_400;
/// Page breaks at every multiple of this (in sort order) fall inside a group of equal timestamps.
pub const TIE_EVERY: usize = 25;
/// Half width of such a group: positions `k*TIE_EVERY - 2 ..= k*TIE_EVERY + 2` share `updated_at`.
const TIE_HALF: usize = 2;

/// How much seeded data to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSizes {
    /// Number of orders.
    pub orders: usize,
    /// Number of products.
    pub products: usize,
    /// Number of customers.
    pub customers: usize,
    /// Number of events.
    pub events: usize,
}

impl Default for DataSizes {
    fn default() -> Self {
        Self {
            orders: 250,
            products: 120,
            customers: 60,
            events: 230,
        }
    }
}

/// Formats a timestamp as RFC 3339 in UTC with a `Z`.
pub fn format_ts(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp (any offset) into UTC.
pub fn parse_ts(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.to_offset(UtcOffset::UTC))
}

/// Serde helpers for RFC 3339 timestamps written in UTC with a `Z`.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Writes the timestamp in UTC.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(*t))
    }

    /// Reads an RFC 3339 timestamp, normalised to UTC.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_ts(&text).map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not an RFC 3339 timestamp: {e}"))
        })
    }
}

/// An order, serialised exactly as `GET /orders` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Primary key.
    pub id: u64,
    /// The customer who placed it.
    pub customer_id: u64,
    /// The caller's own reference, e.g. `EXT-000001`.
    pub external_id: String,
    /// `pending`, `paid`, `shipped`, `delivered`, `cancelled` or `refunded`.
    pub status: String,
    /// Total in `currency`, rounded to cents.
    pub total: f64,
    /// Always `EUR` for seeded orders.
    pub currency: String,
    /// Creation time.
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change; the sort and incremental key.
    #[serde(with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Order {
    /// The `(updated_at in ns, id)` position of the order in the API's sort order.
    pub fn position(&self) -> (i128, u64) {
        (self.updated_at.unix_timestamp_nanos(), self.id)
    }
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Line number, from 1.
    pub line: u32,
    /// The order it belongs to.
    pub order_id: u64,
    /// Product SKU.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// Unit price.
    pub price: f64,
}

/// A product of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Primary key, `SKU-0001`.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Unit price.
    pub price: f64,
    /// Currency of the price.
    pub currency: String,
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Primary key.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// E-mail address (example.com).
    pub email: String,
    /// ISO 3166 country code.
    pub country: String,
    /// Sign-up time.
    #[serde(with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An entry of the event feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Primary key, increasing.
    pub id: u64,
    /// `order.created`, `order.updated`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// The order concerned.
    pub order_id: u64,
    /// When it happened.
    #[serde(with = "rfc3339")]
    pub occurred_at: OffsetDateTime,
}

/// The fields `POST /orders` accepts; the server assigns the id and the timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// Required, a non-negative integer.
    pub customer_id: u64,
    /// Required, a non-empty string.
    pub external_id: String,
    /// Defaults to `pending`.
    pub status: String,
    /// Defaults to 0; rounded to cents.
    pub total: f64,
    /// Defaults to `EUR`.
    pub currency: String,
}

impl NewOrder {
    /// Reads a request body; other fields (an `id`, timestamps) are ignored.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let obj = v
            .as_object()
            .ok_or("the body must be a JSON object with customer_id and external_id")?;
        let customer_id = obj
            .get("customer_id")
            .and_then(Value::as_u64)
            .ok_or("field `customer_id` is required and must be a non-negative integer")?;
        let external_id = obj
            .get("external_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("field `external_id` is required and must be a non-empty string")?
            .to_string();
        let text = |name: &str, default: &str| -> Result<String, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(default.to_string()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("field `{name}` must be a string")),
            }
        };
        let status = text("status", "pending")?;
        let currency = text("currency", "EUR")?;
        let total = match obj.get("total") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or("field `total` must be a non-negative number")?,
        };
        Ok(Self {
            customer_id,
            external_id,
            status,
            total: (total * 100.0).round() / 100.0,
            currency,
        })
    }
}

/// SplitMix64: a tiny generator whose output never changes with a crate upgrade, so a seed
/// gives the same shop forever (rand's StdRng does not promise that across versions).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const STATUSES: &[&str] = &[
    "pending",
    "paid",
    "paid",
    "shipped",
    "delivered",
    "delivered",
    "cancelled",
    "refunded",
];
const FIRST: &[&str] = &[
    "Ada", "Bruno", "Chloé", "Dmitri", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kaito",
    "Lena", "Mateo", "Nora", "Oskar", "Priya",
];
const LAST: &[&str] = &[
    "Almeida", "Berger", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvat", "Ivanova",
    "Jansen", "Kowalski", "Laurent", "Moreau", "Novak", "Olsen", "Rossi",
];
const COUNTRIES: &[&str] = &["DE", "FR", "ES", "IT", "NL", "PT", "PL", "SE", "AT", "BE"];
const ADJECTIVES: &[&str] = &[
    "Classic", "Compact", "Deluxe", "Eco", "Heavy", "Light", "Mini", "Pro", "Smart", "Vintage",
];
const NOUNS: &[&str] = &[
    "Backpack",
    "Bottle",
    "Chair",
    "Desk Lamp",
    "Headphones",
    "Kettle",
    "Mug",
    "Notebook",
    "Speaker",
    "Umbrella",
];
const CATEGORIES: &[&str] = &["home", "office", "outdoor", "audio", "kitchen"];
const EVENT_TYPES: &[&str] = &[
    "order.created",
    "order.paid",
    "order.shipped",
    "order.updated",
    "order.refunded",
];

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn money(cents: u64) -> f64 {
    cents as f64 / 100.0
}

/// The whole shop, in memory.
#[derive(Debug, Clone)]
pub struct Dataset {
    orders: BTreeMap<u64, Order>,
    /// `(updated_at ns, id)` of every order: the API's sort order.
    index: BTreeSet<(i128, u64)>,
    items: BTreeMap<u64, Vec<Item>>,
    products: Vec<Product>,
    customers: Vec<Customer>,
    events: Vec<Event>,
    rng: Rng,
}

/// A page request over the orders.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderQuery {
    /// Position of the last record of the previous page (excluded).
    pub after: Option<(i128, u64)>,
    /// `updated_at >=` this, in ns.
    pub gte: Option<i128>,
    /// `updated_at <` this, in ns.
    pub lt: Option<i128>,
    /// Records per page.
    pub limit: usize,
}

impl Dataset {
    /// Makes the seeded shop; the same seed and sizes always give the same data.
    pub fn generate(seed: u64, sizes: DataSizes) -> Self {
        let mut rng = Rng(seed);
        let products: Vec<Product> = (1..=sizes.products)
            .map(|i| Product {
                sku: format!("SKU-{i:04}"),
                name: format!("{} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS)),
                category: rng.pick(CATEGORIES).to_string(),
                price: money(199 + rng.below(19_800)),
                currency: "EUR".into(),
            })
            .collect();
        let customers: Vec<Customer> = (1..=sizes.customers as u64)
            .map(|id| {
                let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
                Customer {
                    id,
                    name: format!("{first} {last}"),
                    email: format!(
                        "{}.{}{id}@example.com",
                        ascii_lower(first),
                        ascii_lower(last)
                    ),
                    country: rng.pick(COUNTRIES).to_string(),
                    created_at: at(BASE - SPAN + (id as i64) * 3_600 + rng.below(3_600) as i64),
                }
            })
            .collect();
        let mut data = Dataset {
            orders: BTreeMap::new(),
            index: BTreeSet::new(),
            items: BTreeMap::new(),
            products,
            customers,
            events: Vec::new(),
            rng,
        };
        let n = sizes.orders as i64;
        let spacing = (SPAN / n.max(1)).max(1);
        let mut orders = Vec::with_capacity(sizes.orders);
        for i in 0..n {
            let id = (i + 1) as u64;
            let created = BASE + i * spacing + data.rng.below(spacing as u64) as i64;
            let updated = if data.rng.below(10) < 3 {
                created
            } else {
                created + data.rng.below(20 * 86_400) as i64
            };
            let customers = sizes.customers.max(1) as u64;
            let customer_id = 1 + data.rng.below(customers);
            let status = data.rng.pick(STATUSES).to_string();
            let cents = data.make_items(id);
            orders.push(Order {
                id,
                customer_id,
                external_id: format!("EXT-{id:06}"),
                status,
                total: money(cents),
                currency: "EUR".into(),
                created_at: at(created),
                updated_at: at(updated),
            });
        }
        make_ties(&mut orders);
        for o in orders {
            data.index.insert(o.position());
            data.orders.insert(o.id, o);
        }
        let ev = sizes.events as i64;
        let ev_spacing = (SPAN / ev.max(1)).max(1);
        for k in 0..ev {
            let order_id = if sizes.orders == 0 {
                0
            } else {
                1 + data.rng.below(sizes.orders as u64)
            };
            let event_type = data.rng.pick(EVENT_TYPES).to_string();
            let occurred = BASE + k * ev_spacing + data.rng.below(ev_spacing as u64) as i64;
            data.events.push(Event {
                id: (k + 1) as u64,
                event_type,
                order_id,
                occurred_at: at(occurred),
            });
        }
        data
    }

    /// Makes 1 to 4 items for an order; returns their total in cents.
    fn make_items(&mut self, order_id: u64) -> u64 {
        let lines = 1 + self.rng.below(4) as u32;
        let mut total = 0;
        let mut items = Vec::with_capacity(lines as usize);
        for line in 1..=lines {
            let (sku, cents) = if self.products.is_empty() {
                ("SKU-0000".to_string(), 1_000)
            } else {
                let p = &self.products[self.rng.below(self.products.len() as u64) as usize];
                (p.sku.clone(), (p.price * 100.0).round() as u64)
            };
            let quantity = 1 + self.rng.below(5) as u32;
            total += cents * u64::from(quantity);
            items.push(Item {
                line,
                order_id,
                sku,
                quantity,
                price: money(cents),
            });
        }
        self.items.insert(order_id, items);
        total
    }

    /// One page of orders in `(updated_at, id)` order, and whether more follow.
    pub fn orders_page(&self, q: &OrderQuery) -> (Vec<Order>, bool) {
        let from_filter = q.gte.map(|g| (g, 0u64));
        let lower = match (q.after, from_filter) {
            (Some(a), Some(f)) if f > a => Bound::Included(f),
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(f)) => Bound::Included(f),
            (None, None) => Bound::Unbounded,
        };
        let mut page: Vec<Order> = self
            .index
            .range((lower, Bound::Unbounded))
            .take_while(|(t, _)| q.lt.is_none_or(|lt| *t < lt))
            .take(q.limit.saturating_add(1))
            .filter_map(|(_, id)| self.orders.get(id).cloned())
            .collect();
        let more = page.len() > q.limit;
        page.truncate(q.limit);
        (page, more)
    }

    /// An order by id.
    pub fn order(&self, id: u64) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// Every order, by id.
    pub fn orders(&self) -> Vec<Order> {
        self.orders.values().cloned().collect()
    }

    /// Every order in the API's `(updated_at, id)` order.
    pub fn orders_sorted(&self) -> Vec<Order> {
        self.index
            .iter()
            .filter_map(|(_, id)| self.orders.get(id).cloned())
            .collect()
    }

    /// Number of orders.
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// The items of an order (`None` for an unknown order).
    pub fn items(&self, order_id: u64) -> Option<Vec<Item>> {
        self.orders
            .contains_key(&order_id)
            .then(|| self.items.get(&order_id).cloned().unwrap_or_default())
    }

    /// Every product.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// Every customer.
    pub fn customers(&self) -> &[Customer] {
        &self.customers
    }

    /// Every event, by id.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Events with an id above `after`, at most `limit`, and whether more follow.
    pub fn events_after(&self, after: u64, limit: usize) -> (Vec<Event>, bool) {
        let start = self.events.partition_point(|e| e.id <= after);
        let rest = &self.events[start..];
        let page = rest.iter().take(limit).cloned().collect::<Vec<_>>();
        (page, rest.len() > limit)
    }

    /// The newest `updated_at`, if any order exists.
    pub fn max_updated_at(&self) -> Option<OffsetDateTime> {
        self.index
            .last()
            .and_then(|(_, id)| self.orders.get(id))
            .map(|o| o.updated_at)
    }

    /// A timestamp for a change made now: the current second, but never before the newest
    /// order, so a change always lands at or after the end of the sort order.
    pub fn fresh_timestamp(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        match self.max_updated_at() {
            Some(max) if max > now => max,
            _ => now,
        }
    }

    fn next_order_id(&self) -> u64 {
        self.orders.last_key_value().map_or(1, |(id, _)| id + 1)
    }

    fn push_event(&mut self, event_type: &str, order: &Order) -> Event {
        let ev = Event {
            id: self.events.last().map_or(1, |e| e.id + 1),
            event_type: event_type.to_string(),
            order_id: order.id,
            occurred_at: order.updated_at,
        };
        self.events.push(ev.clone());
        ev
    }

    /// Inserts or replaces an order (timestamps normalised to UTC); appends an event.
    pub fn upsert(&mut self, mut order: Order) -> (Order, Event) {
        order.created_at = order.created_at.to_offset(UtcOffset::UTC);
        order.updated_at = order.updated_at.to_offset(UtcOffset::UTC);
        let existed = match self.orders.get(&order.id) {
            Some(old) => {
                self.index.remove(&old.position());
                true
            }
            None => false,
        };
        if !existed && !self.items.contains_key(&order.id) {
            self.make_items(order.id);
        }
        self.index.insert(order.position());
        self.orders.insert(order.id, order.clone());
        let ev = self.push_event(
            if existed {
                "order.updated"
            } else {
                "order.created"
            },
            &order,
        );
        (order, ev)
    }

    /// Sets an order's `updated_at`; `None` for an unknown order.
    pub fn touch(&mut self, id: u64, updated_at: OffsetDateTime) -> Option<(Order, Event)> {
        let mut order = self.orders.get(&id)?.clone();
        order.updated_at = updated_at;
        Some(self.upsert(order))
    }

    /// Inserts `n` new random orders, all updated at `updated_at`.
    pub fn insert_random(&mut self, n: usize, updated_at: OffsetDateTime) -> Vec<(Order, Event)> {
        (0..n)
            .map(|_| {
                let id = self.next_order_id();
                let customers = self.customers.len().max(1) as u64;
                let customer_id = 1 + self.rng.below(customers);
                let status = self.rng.pick(STATUSES).to_string();
                let cents = self.make_items(id);
                self.upsert(Order {
                    id,
                    customer_id,
                    external_id: format!("EXT-{id:06}"),
                    status,
                    total: money(cents),
                    currency: "EUR".into(),
                    created_at: updated_at,
                    updated_at,
                })
            })
            .collect()
    }

    /// Creates an order from a `POST /orders` body, with a new id; no items.
    pub fn create(&mut self, new: NewOrder, at: OffsetDateTime) -> (Order, Event) {
        let id = self.next_order_id();
        self.items.insert(id, Vec::new());
        self.upsert(Order {
            id,
            customer_id: new.customer_id,
            external_id: new.external_id,
            status: new.status,
            total: new.total,
            currency: new.currency,
            created_at: at,
            updated_at: at,
        })
    }
}

fn ascii_lower(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Gives the orders at sort positions `k*TIE_EVERY - 2 ..= k*TIE_EVERY + 2` one shared
/// `updated_at` (the smallest of the group, so the sort order of everything else is kept), so
/// that page breaks of 25, 50 or 100 records cut through a run of equal timestamps.
fn make_ties(orders: &mut [Order]) {
    let mut sorted: Vec<usize> = (0..orders.len()).collect();
    sorted.sort_by_key(|&i| orders[i].position());
    let mut center = TIE_EVERY;
    while center < orders.len() {
        let lo = center - TIE_HALF;
        let hi = (center + TIE_HALF).min(orders.len() - 1);
        let t = orders[sorted[lo]].updated_at;
        for &i in &sorted[lo..=hi] {
            orders[i].updated_at = t;
            if orders[i].created_at > t {
                orders[i].created_at = t;
            }
        }
        center += TIE_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(d: &Dataset, limit: usize, gte: Option<i128>) -> Vec<u64> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = d.orders_page(&OrderQuery {
                after,
                gte,
                lt: None,
                limit,
            });
            out.extend(page.iter().map(|o| o.id));
            if !more {
                return out;
            }
            after = page.last().map(Order::position);
        }
    }

    #[test]
    fn seeded_data_is_deterministic_and_sized() {
        let a = Dataset::generate(7, DataSizes::default());
        let b = Dataset::generate(7, DataSizes::default());
        assert_eq!(a.orders(), b.orders());
        assert_eq!(a.order_count(), 250);
        assert_eq!(a.products().len(), 120);
        assert_eq!(a.customers().len(), 60);
        assert_eq!(a.events().len(), 230);
        let c = Dataset::generate(8, DataSizes::default());
        assert_ne!(a.orders(), c.orders());
    }

    #[test]
    fn orders_are_well_formed() {
        let d = Dataset::generate(1, DataSizes::default());
        for o in d.orders() {
            let items = d.items(o.id).unwrap();
            assert!((1..=4).contains(&items.len()));
            let sum: f64 = items.iter().map(|i| i.price * f64::from(i.quantity)).sum();
            assert!((sum - o.total).abs() < 0.005, "order {}", o.id);
            assert!(o.created_at <= o.updated_at);
            assert!(o.customer_id >= 1 && o.customer_id <= 60);
            let json = serde_json::to_value(&o).unwrap();
            assert!(json["updated_at"].as_str().unwrap().ends_with('Z'));
            assert_eq!(json["currency"], "EUR");
        }
    }

    #[test]
    fn ties_straddle_page_breaks() {
        let d = Dataset::generate(3, DataSizes::default());
        let sorted = d.orders_sorted();
        for k in [25usize, 50, 100, 200] {
            assert_eq!(
                sorted[k - 1].updated_at,
                sorted[k].updated_at,
                "positions {} and {k} should share updated_at",
                k - 1
            );
        }
    }

    #[test]
    fn walking_every_page_returns_every_order_once() {
        let d = Dataset::generate(5, DataSizes::default());
        for limit in [1, 7, 25, 50, 100, 250, 1000] {
            let ids = walk(&d, limit, None);
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(ids.len(), 250, "limit {limit}");
            assert_eq!(sorted.len(), 250, "limit {limit}");
        }
    }

    #[test]
    fn gte_filter_is_inclusive() {
        let d = Dataset::generate(5, DataSizes::default());
        let sorted = d.orders_sorted();
        let boundary = sorted[100].updated_at.unix_timestamp_nanos();
        let ids = walk(&d, 10, Some(boundary));
        let expected: Vec<u64> = sorted
            .iter()
            .filter(|o| o.updated_at.unix_timestamp_nanos() >= boundary)
            .map(|o| o.id)
            .collect();
        assert_eq!(ids, expected);
        // The tie group around position 100 starts at 98: all of it is included.
        assert!(ids.contains(&sorted[98].id));
    }

    #[test]
    fn inserts_mid_walk_cause_no_skip_or_repeat() {
        let mut d = Dataset::generate(9, DataSizes::default());
        let mut seen = Vec::new();
        let mut after = None;
        let mut round = 0;
        loop {
            let (page, more) = d.orders_page(&OrderQuery {
                after,
                gte: None,
                lt: None,
                limit: 30,
            });
            seen.extend(page.iter().map(|o| o.id));
            round += 1;
            if round == 2 {
                let ts = d.fresh_timestamp();
                d.insert_random(5, ts);
                // An order moved before the cursor is not returned again in this walk.
                let first = seen[0];
                let early = d.order(first).unwrap().updated_at - time::Duration::days(1);
                d.touch(first, early);
            }
            if !more {
                break;
            }
            after = page.last().map(Order::position);
        }
        let mut uniq = seen.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(seen.len(), uniq.len(), "no repeats");
        assert_eq!(seen.len(), 255, "every original and inserted order");
    }

    #[test]
    fn create_assigns_new_ids() {
        let mut d = Dataset::generate(
            1,
            DataSizes {
                orders: 3,
                ..DataSizes::default()
            },
        );
        let new = NewOrder::from_json(&serde_json::json!({"customer_id": 2, "external_id": "x"}))
            .unwrap();
        let (o, ev) = d.create(new, d.fresh_timestamp());
        assert_eq!(o.id, 4);
        assert_eq!(ev.order_id, 4);
        assert_eq!(ev.event_type, "order.created");
        assert_eq!(d.items(4), Some(vec![]));
        assert_eq!(d.items(99), None);
    }

    #[test]
    fn new_order_validation() {
        assert!(NewOrder::from_json(&serde_json::json!([])).is_err());
        assert!(NewOrder::from_json(&serde_json::json!({"external_id": "a"})).is_err());
        assert!(NewOrder::from_json(&serde_json::json!({"customer_id": 1})).is_err());
        assert!(
            NewOrder::from_json(
                &serde_json::json!({"customer_id": 1, "external_id": "a", "total": "x"})
            )
            .is_err()
        );
        let o = NewOrder::from_json(
            &serde_json::json!({"customer_id": 1, "external_id": "a", "total": 10.456, "id": 5}),
        )
        .unwrap();
        assert_eq!(o.total, 10.46);
        assert_eq!(o.status, "pending");
    }

    #[test]
    fn events_page() {
        let d = Dataset::generate(1, DataSizes::default());
        let (p, more) = d.events_after(0, 100);
        assert_eq!(p.len(), 100);
        assert!(more);
        let (p, more) = d.events_after(200, 100);
        assert_eq!(p.len(), 30);
        assert!(!more);
        assert_eq!(p[0].id, 201);
    }
}
