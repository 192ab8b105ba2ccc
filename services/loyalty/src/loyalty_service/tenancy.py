"""A number that changes hands (or whose subscription ends): the previous owner's membership
is closed and its points go (`close:<member>:<enrolled at>`, a ledger entry: the claim, so a
replay or the new owner's enrolment racing this changes nothing twice), and its card
requests still on their way are cancelled. A membership enrolled at or after the boundary
is the new owner's and is left alone. The new owner enrols afresh (Programme.enroll).
"""

from __future__ import annotations

from collections.abc import Sequence

from mobi_contracts import AnyEvent
from servicekit.tenancy import latest_tenancy_ends, of_tenancy

from .offers import Offers
from .programme import Programme


class MembershipEnds:
    def __init__(self, programme: Programme, offers: Offers) -> None:
        self.programme = programme
        self.offers = offers

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        for event in latest_tenancy_ends(events):
            await self._close(event)

    async def _close(self, event: AnyEvent) -> None:
        msisdn, boundary = event.subject, event.data.changed_at
        wallet = await self.programme.ledger.wallet(msisdn)
        if wallet is not None and not wallet.closed and not of_tenancy(wallet.enrolled_at, boundary):
            await self.programme.close_membership(wallet)
        await self.offers.cancel_cards_before(msisdn, boundary)
