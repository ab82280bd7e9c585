//! Pricing and rating: price books, charge models, dynamic and plan-based pricing, tax, and the
//! [`rate`] entry point that turns usage rows into explained, rounded, taxed line items.
//!
//! Rules for money (precision, the single rounding per line, inclusive tax, proration) are in
//! `docs/money.md`; the pricing rules and worked examples in `docs/pricing.md`.

pub mod book;
pub mod catalog;
pub mod charge;
pub mod dynamic;
pub mod period;
pub mod plan;
pub mod rate;
pub mod tax;
pub mod validate;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use book::{
    ChargeModel, DemandPoint, DiscountBasis, DiscountMethod, DiscountScope, DiscountThreshold,
    DynamicPricing, Owner, Price, PriceBook, Spot, TaxMode, Tier, TimeOfUse, TimeOfUseRule, VolumeDiscount,
};
pub use catalog::{Catalog, CatalogData, UpfrontPayout};
pub use charge::{charge, explain, Charge, TierApplied};
pub use dynamic::{FactorPoint, MarketFactors};
pub use period::{prorate, Period};
pub use plan::{Allowance, OnCancel, Plan, Reservation, Subscription, Upfront};
pub use rate::{
    rate, rate_upfront, rows_from_aggregates, volume_discount, BookRef, LineItem, LineKind, RatingContext,
    RatingError, RatingResult, Unpriced, UnpricedReason, UsageRow,
};
pub use tax::{
    tax_breakdown, tax_line, tax_report, Jurisdiction, LineTax, NoTaxRate, ResolvedTax, TaxBreakdownRow,
    TaxProfile, TaxRate, TaxReportRow, TaxTable, TaxTreatment, REVERSE_CHARGE_NOTE,
};
pub use validate::{validate_book, validate_books, ValidationErrors, ValidationIssue};
