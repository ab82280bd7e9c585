//! Usage forecasting (feature `forecast`): per account and meter, from hourly or daily usage,
//! to the end of the billing period and N days ahead, with 80 % and 95 % prediction intervals,
//! turned into money by rating the projected usage with the pricing engine.
//!
//! Rules, methods and limits: `docs/estimates-and-forecasts.md`.

pub mod backtest;
pub mod model;
pub mod project;

#[cfg(test)]
mod tests;

pub use backtest::{
    backtest, daily_trend_weekly, hourly_trend_daily_weekly, synthetic_events, BacktestResult, BacktestSpec,
    Scores,
};
pub use model::{forecast_series, seasonal_naive, Band, Method, ModelOptions, SeriesForecast, LEVELS};
pub use project::{
    estimate_period, forecast_days, forecast_rows, is_fallback, DaysForecast, ForecastError, ForecastOptions,
    MeterForecast, MoneyBand, PeriodEstimate, Spend, QUANTITY_SCALE,
};
