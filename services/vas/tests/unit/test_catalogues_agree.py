"""A contract test over two services' seeds: every VAS a loyalty reward grants is a service of
the VAS catalogue (the VAS catalogue import checks the same against loyalty's live catalogue)."""

from __future__ import annotations

from loyalty_service.domain.rules import CATALOGUE
from mobi_contracts.events.loyalty import RedemptionReward
from vas_service.catalog import missing_rewards
from vas_service.domain.catalog import DEMO_PACKS, DEMO_VAS


def loyalty_items() -> list[dict[str, object]]:
    return [vars(item) for item in CATALOGUE.values()]


def test_every_vas_a_loyalty_reward_grants_is_in_the_vas_catalogue() -> None:
    assert missing_rewards(loyalty_items(), [*DEMO_VAS, *DEMO_PACKS]) == []


def test_a_catalogue_without_a_rewarded_vas_is_found_wanting() -> None:
    without_funring = [i for i in DEMO_VAS if i.code != "FUNRING"]
    assert missing_rewards(loyalty_items(), without_funring) == ["VAS-FUNRING-30D"]


def test_a_30_day_reward_says_30_days_on_the_event() -> None:
    for item in CATALOGUE.values():
        if item.kind == "vas" and item.code.endswith("-30D"):
            reward = RedemptionReward(kind="vas", catalog_code=item.code, **item.reward)
            assert reward.vas_days == 30
