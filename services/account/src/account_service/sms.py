"""SMS adapter: OTP messages to the SMS centre over SMPP v3.4 (a local sandbox in dev/tests)."""

from __future__ import annotations

from datetime import timedelta

from mobi_smpp import SmppClient

from .settings import AccountSettings


class SmppSender:
    def __init__(self, settings: AccountSettings, valid_for: timedelta) -> None:
        self.source = settings.sms_sender
        self.client = SmppClient(
            host=settings.smsc_host,
            port=settings.smsc_port,
            system_id=settings.smsc_system_id,
            password=settings.smsc_password.get_secret_value(),
            # The SMS centre stops trying to deliver a code once it has expired anyway.
            validity_period=valid_for,
        )

    async def start(self) -> None:
        await self.client.start()

    async def stop(self) -> None:
        await self.client.close()

    async def send(self, destination: str, text: str) -> None:
        await self.client.submit(self.source, destination, text)
