"""HTML of the hosted payment page. Plain forms that any HTTP client can submit; every dynamic
value is escaped. Card fields are never echoed back into a page, not even after an error."""

from __future__ import annotations

from html import escape

from .cards import DOMESTIC_METHODS, OTP_CODE, TEST_CARDS
from .models import Transaction

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}.box{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}
label{display:block;margin:.5rem 0 .2rem}input{padding:.4rem;width:16rem}
button{margin-top:1rem;padding:.5rem 1.2rem}.error{color:#a00;font-weight:bold}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem}
.muted{color:#666;font-size:.9rem}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='referrer' content='no-referrer'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _summary(txn: Transaction) -> str:
    return (
        "<div class='box'>"
        f"<div>Merchant: <b>{escape(txn.tmn_code)}</b></div>"
        f"<div>Order: <b id='txn-ref'>{escape(txn.txn_ref)}</b> ({escape(txn.order_info)})</div>"
        f"<div>Amount: <b id='amount'>{txn.amount_vnd:,} VND</b></div>"
        "</div>"
    )


def _error(message: str | None) -> str:
    return f"<p class='error' role='alert'>{escape(message)}</p>" if message else ""


def payment_page(txn: Transaction, error: str | None = None) -> str:
    action = f"/paymentv2/checkout/{escape(txn.session_id)}"
    domestic = txn.requested_bank_code in DOMESTIC_METHODS
    date_field = (
        "<label for='card_issue_date'>Issue date (MM/YY)</label>"
        "<input id='card_issue_date' name='card_issue_date' placeholder='07/15' autocomplete='off'>"
        if domestic
        else "<label for='card_expiry'>Expiry date (MM/YY)</label>"
        "<input id='card_expiry' name='card_expiry' placeholder='12/30' autocomplete='cc-exp'>"
        "<label for='card_cvv'>CVV</label>"
        "<input id='card_cvv' name='card_cvv' maxlength='3' autocomplete='off'>"
    )
    form = (
        f"<form method='post' action='{action}' class='box'>"
        "<label for='card_number'>Card number</label>"
        "<input id='card_number' name='card_number' inputmode='numeric' autocomplete='cc-number'>"
        "<label for='card_holder'>Card holder (as printed)</label>"
        "<input id='card_holder' name='card_holder' autocomplete='cc-name'>"
        f"{date_field}<button type='submit'>Pay</button></form>"
        f"<form method='post' action='{action}/cancel'><button type='submit'>Cancel payment</button></form>"
    )
    title = "Domestic ATM card payment" if domestic else "Card payment"
    return _page(f"{title} (sandbox)", _summary(txn) + _error(error) + form + test_cards_table())


def otp_page(txn: Transaction) -> str:
    action = f"/paymentv2/checkout/{escape(txn.session_id)}/otp"
    body = (
        _summary(txn)
        + f"<p>Card {escape(txn.masked_card or '')}: your bank sent a one-time password.</p>"
        + f"<form method='post' action='{action}' class='box'>"
        + "<label for='otp'>OTP</label>"
        + "<input id='otp' name='otp' inputmode='numeric' autocomplete='one-time-code'>"
        + "<button type='submit'>Confirm</button></form>"
        + f"<p class='muted'>Sandbox: the OTP <b>{OTP_CODE}</b> passes; anything else fails with code 13.</p>"
    )
    return _page("3-D Secure verification (sandbox)", body)


def error_page(code: str, message: str) -> str:
    body = (
        f"<p class='error' role='alert'>Error <span id='error-code'>{escape(code)}</span>: "
        f"{escape(message)}</p>"
    )
    return _page("Payment cannot be processed", body + "<p>No payment was taken.</p>")


def test_cards_table() -> str:
    rows = "".join(
        f"<tr><td><code>{card.number}</code></td><td>{escape(card.label)}</td>"
        f"<td>{'OTP ' + OTP_CODE if card.challenge else '-'}</td></tr>"
        for card in TEST_CARDS
    )
    return (
        "<div class='box'><b>Test cards</b>"
        "<p class='muted'>International: any future expiry (MM/YY), CVV any 3 digits. Domestic (NCB): "
        "issue date 07/15. Holder: any name, e.g. NGUYEN VAN A.</p>"
        f"<table><tr><th>Number</th><th>Behaviour</th><th>Step</th></tr>{rows}</table></div>"
    )
