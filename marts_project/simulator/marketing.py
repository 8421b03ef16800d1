"""Marketing sources: ad-platform daily stats (conversions restated late), CRM leads, catalog."""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass
from decimal import Decimal

from marts_project.simulator.core import SimConfig, extracted_at, revision_at, rng_for, to_csv

CHANNELS = {
    # channel: (platform, click-through rate, cost per click, click -> conversion rate)
    "search": ("google_ads", 0.045, 1.20, 0.060),
    "social": ("meta_ads", 0.012, 0.65, 0.025),
    "display": ("google_ads", 0.004, 0.40, 0.010),
    "video": ("youtube", 0.008, 0.55, 0.015),
    "affiliate": ("impact", 0.020, 0.90, 0.040),
}
MATURITY = (0.55, 0.8, 0.93, 1.0)  # share of final conversions visible at revision 0, 1, 2, 3
FIRST = ("ada", "alan", "grace", "linus", "margaret", "ken", "barbara", "edsger", "frances", "tim")
LAST = ("lovelace", "turing", "hopper", "torvalds", "hamilton", "thompson", "liskov", "dijkstra")


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    channel: str


@functools.lru_cache(maxsize=8)
def campaigns(cfg: SimConfig) -> list[Campaign]:
    """The campaign universe: about one campaign per ten ad rows a day."""
    count = max(3, cfg.rows_per_day // 10)
    rng = rng_for(cfg, "campaigns")
    names = list(CHANNELS)
    return [
        Campaign(
            f"cmp_{i:04d}",
            f"{rng.choice(('spring', 'brand', 'promo', 'retarget'))} {i}",
            names[i % len(names)],
        )
        for i in range(count)
    ]


def is_active(cfg: SimConfig, campaign: Campaign, day: dt.date) -> bool:
    """Campaigns pause for whole ISO weeks now and then (about one week in seven)."""
    year, week, _ = day.isocalendar()
    return campaign.campaign_id in _active_in_week(cfg, year, week)


@functools.lru_cache(maxsize=16)
def _active_in_week(cfg: SimConfig, year: int, week: int) -> frozenset[str]:
    rng = rng_for(cfg, "active", year, week)
    return frozenset(c.campaign_id for c in campaigns(cfg) if rng.random() > 0.15)


OWNERS = ("ana.ruiz", "ben.okafor", "chen.li", "dora.nagy")


def channel_attributes(cfg: SimConfig, channel: str, day: dt.date) -> tuple[str, str]:
    """(owner, cost model) of a channel on a day: reassigned each quarter, often unchanged."""
    rng = rng_for(cfg, "channel", channel, day.year, (day.month - 1) // 3)
    return rng.choice(OWNERS), "cpm" if rng.random() < 0.3 else "cpc"


def render_campaigns(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """Daily snapshot of the campaign catalog."""
    header = [
        "snapshot_date",
        "campaign_id",
        "campaign_name",
        "channel",
        "platform",
        "status",
        "daily_budget",
        "channel_owner",
        "cost_model",
    ]
    rows = []
    budgets = rng_for(cfg, "budget")  # the same budget every day: drawn in campaign order
    for campaign in campaigns(cfg):
        budget = budgets.randrange(50, 2000)
        rows.append(
            [
                day.isoformat(),
                campaign.campaign_id,
                campaign.name,
                campaign.channel,
                CHANNELS[campaign.channel][0],
                "active" if is_active(cfg, campaign, day) else "paused",
                f"{budget}.00",
                *channel_attributes(cfg, campaign.channel, day),
            ]
        )
    return to_csv(header, rows)


def _ad_rows(
    cfg: SimConfig, day: dt.date
) -> list[tuple[str, Campaign, int, int, Decimal, int, bool]]:
    """Final (fully restated) ad rows of one day: ad, campaign, impressions, clicks, spend, conv.

    One generator per day, drawn row after row: which rows exist does not depend on when the
    file is exported, so every export of the day sees the same draws."""
    universe = campaigns(cfg)
    year, week, _ = day.isocalendar()
    active = _active_in_week(cfg, year, week)
    rng = rng_for(cfg, "ad", day)
    rows = []
    for i in range(cfg.rows_per_day):
        campaign = universe[i % len(universe)]
        if campaign.campaign_id not in active:
            continue
        _, ctr, cpc, cvr = CHANNELS[campaign.channel]
        impressions = int(rng.lognormvariate(7.5, 0.8))
        clicks = _binomial(rng, impressions, ctr)
        spend = Decimal(f"{clicks * cpc * rng.uniform(0.7, 1.3):.2f}")
        conversions = _binomial(rng, clicks, cvr)
        late = rng.random() < cfg.late_share
        rows.append((f"ad_{i:05d}", campaign, impressions, clicks, spend, conversions, late))
    return rows


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw by its normal approximation (fast enough for millions of rows)."""
    mean = n * p
    return min(n, max(0, round(rng.gauss(mean, (mean * (1 - p)) ** 0.5))))


def render_ad_stats(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """Ad-platform export of one day; late rows' conversions grow with each revision."""
    header = [
        "stat_date",
        "ad_id",
        "campaign_id",
        "impressions",
        "clicks",
        "spend",
        "currency",
        "conversions",
        "extracted_at",
    ]
    revision = revision_at(day, as_of, cfg) or 0
    exported = extracted_at(day, revision).isoformat()
    maturity = MATURITY[min(revision, len(MATURITY) - 1)] if revision < cfg.final_revision else 1.0
    rows = []
    for ad_id, campaign, impressions, clicks, spend, conversions, late in _ad_rows(cfg, day):
        visible = int(conversions * maturity) if late else conversions
        rows.append(
            [
                day.isoformat(),
                ad_id,
                campaign.campaign_id,
                impressions,
                clicks,
                spend,
                "USD",
                visible,
                exported,
            ]
        )
    return to_csv(header, rows)


def render_crm_leads(cfg: SimConfig, day: dt.date, as_of: dt.datetime) -> bytes:
    """CRM export of the leads created on one day; e-mail and name are PII."""
    header = ["lead_id", "created_at", "email", "full_name", "campaign_id", "is_mql"]
    rng = rng_for(cfg, "leads", day)
    universe = campaigns(cfg)
    rows = []
    for i in range(max(1, cfg.rows_per_day // 4)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        created = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(
            seconds=rng.randrange(86400)
        )
        campaign = rng.choice(universe).campaign_id if rng.random() > 0.1 else ""  # organic
        rows.append(
            [
                f"L{day:%Y%m%d}{i:05d}",
                created.isoformat(),
                f"{first}.{last}{rng.randrange(1000)}@example.com",
                f"{first.title()} {last.title()}",
                campaign,
                "true" if rng.random() < 0.3 else "false",
            ]
        )
    return to_csv(header, rows)


SOURCES = {
    "mkt_campaigns": render_campaigns,
    "mkt_ad_stats": render_ad_stats,
    "mkt_crm_leads": render_crm_leads,
}
