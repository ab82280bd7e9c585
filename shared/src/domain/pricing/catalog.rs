//! Validated price books compiled for rating: versions ordered by time per owner, and prices
//! indexed by meter, most specific first.

use super::book::{ChargeModel, Owner, Price, PriceBook};
use super::dynamic::CompiledDynamic;
use super::tax::TaxTable;
use super::validate::{validate_books, ValidationErrors};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::usage::Dimensions;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Price books, tax rates and marketplace fees: what rating and statements read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogData {
    pub books: Vec<PriceBook>,
    #[serde(default)]
    pub taxes: TaxTable,
    /// Marketplace fee per provider, in percent.
    #[serde(default)]
    pub fees: BTreeMap<String, Decimal>,
    /// When each provider is paid its share of a reservation's upfront (absent: over the term).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upfront_payouts: BTreeMap<String, UpfrontPayout>,
}

/// When a provider is paid its share of a reservation's upfront: a provider-level setting
/// (`CatalogData::upfront_payouts`, default `over_term`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpfrontPayout {
    /// One installment per term month, amortized like the revenue.
    #[default]
    OverTerm,
    /// All of it with the purchase (the first term month).
    AtPurchase,
}

/// The books rated together, compiled. All share one currency.
#[derive(Debug, Clone)]
pub struct Catalog {
    currency: Currency,
    pub(crate) books: Vec<CompiledBook>,
    /// Marketplace book indices, by `effective_from`.
    marketplace: Vec<u32>,
    /// Provider book indices, by `effective_from`.
    providers: HashMap<String, Vec<u32>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledBook {
    pub book: PriceBook,
    pub prices: Vec<CompiledPrice>,
    /// Price indices per meter (`Meter as usize`), most filters first.
    by_meter: Vec<Vec<u32>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledPrice {
    pub meter: Meter,
    pub dynamic: Option<CompiledDynamic>,
}

impl CompiledBook {
    pub(crate) fn price(&self, i: u32) -> &Price {
        &self.book.prices[i as usize]
    }
}

impl Catalog {
    /// Validates the books together ([`validate_books`]) and compiles them.
    #[allow(clippy::expect_used)] // Cannot fail: books are validated before a catalog is built; 8-byte chunks convert to [u8; 8].
    pub fn new(books: Vec<PriceBook>) -> Result<Catalog, ValidationErrors> {
        validate_books(&books)?;
        let currency = books
            .first()
            .and_then(|b| Currency::from_code(&b.currency).ok())
            .unwrap_or(Currency::USD);
        let mut compiled = Vec::with_capacity(books.len());
        let mut marketplace = Vec::new();
        let mut providers: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, book) in books.into_iter().enumerate() {
            let prices: Vec<CompiledPrice> = book
                .prices
                .iter()
                .map(|p| CompiledPrice {
                    meter: p.meter.parse().expect("validated meter"),
                    dynamic: p.dynamic.as_ref().map(CompiledDynamic::compile),
                })
                .collect();
            let mut by_meter = vec![Vec::new(); Meter::ALL.len()];
            for (j, p) in prices.iter().enumerate() {
                by_meter[p.meter as usize].push(j as u32);
            }
            for list in &mut by_meter {
                list.sort_by_key(|&j| std::cmp::Reverse(book.prices[j as usize].filters.len()));
            }
            match &book.owner {
                Owner::Marketplace => marketplace.push(i as u32),
                Owner::Provider { id } => providers.entry(id.clone()).or_default().push(i as u32),
            }
            compiled.push(CompiledBook {
                book,
                prices,
                by_meter,
            });
        }
        let by_from = |v: &mut Vec<u32>| v.sort_by_key(|&i| compiled[i as usize].book.effective_from);
        by_from(&mut marketplace);
        for v in providers.values_mut() {
            by_from(v);
        }
        Ok(Catalog {
            currency,
            books: compiled,
            marketplace,
            providers,
        })
    }

    /// The currency every book of the catalog is in.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The books, as given.
    pub fn books(&self) -> impl Iterator<Item = &PriceBook> {
        self.books.iter().map(|b| &b.book)
    }

    fn in_force(&self, versions: &[u32], t: DateTime<Utc>) -> Option<u32> {
        let i = versions.partition_point(|&b| self.books[b as usize].book.effective_from <= t);
        let b = *versions.get(i.checked_sub(1)?)?;
        let to = self.books[b as usize].book.effective_to;
        to.is_none_or(|to| t < to).then_some(b)
    }

    /// The provider's book versions (by `effective_from`), if it has any.
    pub(crate) fn provider_versions(&self, provider_id: &str) -> Option<&[u32]> {
        self.providers.get(provider_id).map(Vec::as_slice)
    }

    /// The book of `versions` in force at `t`, if any.
    pub(crate) fn version_at(&self, versions: Option<&[u32]>, t: DateTime<Utc>) -> Option<u32> {
        self.in_force(versions?, t)
    }

    /// The marketplace book in force at `t`, if any.
    pub(crate) fn marketplace_book(&self, t: DateTime<Utc>) -> Option<u32> {
        self.in_force(&self.marketplace, t)
    }

    /// The most specific price of `book` for the meter whose filters all match `dims`.
    pub(crate) fn match_price(&self, book: u32, meter: Meter, dims: &Dimensions) -> Option<u32> {
        let b = &self.books[book as usize];
        b.by_meter[meter as usize].iter().copied().find(|&j| {
            b.book.prices[j as usize]
                .filters
                .iter()
                .all(|(k, v)| dims.get(k).is_some_and(|d| d == v))
        })
    }

    /// The per-unit base price of a price, if its model is per-unit.
    pub(crate) fn base_unit_price(&self, book: u32, price: u32) -> Option<Decimal> {
        match &self.books[book as usize].price(price).model {
            ChargeModel::PerUnit { unit_price } => Some(*unit_price),
            _ => None,
        }
    }
}

/// A small, fast, non-cryptographic hasher (the Fx hash) for the rating engine's hot maps,
/// whose keys are trusted (built from validated input, not attacker-chosen in a way that
/// matters for a batch computation).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    #[allow(clippy::expect_used)] // Cannot fail: chunks_exact(8) yields 8-byte slices.
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;
pub(crate) type FxMap<K, V> = HashMap<K, V, FxBuild>;
