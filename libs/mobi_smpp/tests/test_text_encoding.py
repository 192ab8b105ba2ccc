"""Alphabet choice (GSM 03.38 vs UCS-2), segmentation into concatenated parts, decoding back."""

from __future__ import annotations

import unicodedata

import pytest
from smpplib import gsm as smpplib_gsm

from mobi_smpp import (
    Concatenation,
    DataCoding,
    EsmClass,
    Gsm7Error,
    MessageTooLongError,
    Tag,
    Tlv,
    UdhError,
    decode_text,
    encode_message,
    gsm7_decode,
    gsm7_encode,
    is_gsm7,
    sar_concatenation,
    split_udh,
)

VIETNAMESE_OTP = "Mã OTP của bạn là 123456. Không chia sẻ mã này với bất kỳ ai."
LONG_VIETNAMESE = (
    "MobiFone trân trọng thông báo: gói cước của quý khách sẽ được gia hạn vào ngày mai. "
    "Để hủy gia hạn, soạn HUY gửi 9084. Chi tiết liên hệ 9090 (200đ/phút). Xin cảm ơn quý khách!"
)
GSM_ALL_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà"
GSM_EXTENSION = "^{}\\[~]|€\f"


def reassemble(parts: tuple[bytes, ...], data_coding: int) -> str:
    return decode_text(data_coding, b"".join(split_udh(part)[1] for part in parts))


def test_plain_ascii_otp_uses_the_gsm_alphabet_in_one_part() -> None:
    message = encode_message("Your MobiFone OTP is 123456", reference=1)
    assert message.data_coding == DataCoding.DEFAULT
    assert message.esm_class == 0
    assert message.parts == (b"Your MobiFone OTP is 123456",)


def test_vietnamese_diacritics_need_ucs2() -> None:
    assert not is_gsm7(VIETNAMESE_OTP)
    message = encode_message(VIETNAMESE_OTP, reference=1)
    assert message.data_coding == DataCoding.UCS2
    assert message.parts == (VIETNAMESE_OTP.encode("utf-16-be"),)


def test_gsm_alphabet_round_trips_every_basic_and_extension_character() -> None:
    text = GSM_ALL_BASIC + GSM_EXTENSION
    encoded = gsm7_encode(text)
    assert len(encoded) == len(GSM_ALL_BASIC) + 2 * len(GSM_EXTENSION)
    assert gsm7_decode(encoded) == text


def test_gsm_encoding_agrees_with_smpplib() -> None:
    # smpplib's table has '`' where 23.038 has '§' (0x5F); leave that one out.
    text = GSM_ALL_BASIC.replace("§", "") + GSM_EXTENSION.replace("\f", "")
    assert gsm7_encode(text) == smpplib_gsm.gsm_encode(text)


def test_gsm_decoding_refuses_octets_that_are_not_septets() -> None:
    with pytest.raises(Gsm7Error):
        gsm7_decode(b"abc\x80")


def test_gsm_encoding_refuses_characters_outside_the_alphabet() -> None:
    with pytest.raises(Gsm7Error):
        gsm7_encode("ạ")


def test_160_gsm_characters_fit_one_sms_and_161_need_two_parts() -> None:
    assert len(encode_message("a" * 160, reference=1).parts) == 1
    message = encode_message("a" * 161, reference=1)
    assert message.esm_class == EsmClass.UDHI
    assert [len(split_udh(part)[1]) for part in message.parts] == [153, 8]


def test_extension_characters_count_two_septets_toward_the_limit() -> None:
    assert len(encode_message("€" * 80, reference=1).parts) == 1
    assert len(encode_message("€" * 80 + "a", reference=1).parts) == 2


def test_split_never_cuts_a_gsm_escape_sequence() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the euro sign would straddle the 153-septet boundary
    message = encode_message(text, reference=1)
    first_body = split_udh(message.parts[0])[1]
    assert first_body == b"a" * 152
    assert [decode_text(0, split_udh(part)[1]) for part in message.parts] == ["a" * 152, "€" + "b" * 10]


def test_70_ucs2_characters_fit_one_sms_and_71_need_two_parts() -> None:
    assert len(encode_message("ạ" * 70, reference=1).parts) == 1
    message = encode_message("ạ" * 71, reference=1)
    assert [len(split_udh(part)[1]) // 2 for part in message.parts] == [67, 4]


def test_long_vietnamese_text_splits_into_67_character_parts_that_reassemble() -> None:
    message = encode_message(LONG_VIETNAMESE, reference=0x2A)
    assert message.data_coding == DataCoding.UCS2
    assert message.esm_class == EsmClass.UDHI
    assert len(message.parts) == 3
    for number, part in enumerate(message.parts, start=1):
        concatenation, body = split_udh(part)
        assert concatenation == Concatenation(reference=0x2A, total=3, sequence=number)
        assert len(body) <= 134
    assert reassemble(message.parts, message.data_coding) == LONG_VIETNAMESE


def test_concatenation_header_is_the_8bit_reference_layout() -> None:
    message = encode_message("ạ" * 100, reference=0x2A)
    assert [part[:6] for part in message.parts] == [b"\x05\x00\x03\x2a\x02\x01", b"\x05\x00\x03\x2a\x02\x02"]


def test_parts_match_smpplib_segmentation_apart_from_the_random_reference() -> None:
    for text in (LONG_VIETNAMESE, "x" * 400):
        ours = encode_message(text, reference=7).parts
        theirs, _, _ = smpplib_gsm.make_parts(text)
        assert [p[:3] + p[4:] for p in ours] == [p[:3] + p[4:] for p in theirs]


def test_surrogate_pairs_are_never_split_across_parts() -> None:
    text = "ạ" * 66 + "😀" + "b" * 5  # the emoji takes two UTF-16 units at the 67-unit boundary
    message = encode_message(text, reference=1)
    bodies = [split_udh(part)[1] for part in message.parts]
    assert [body.decode("utf-16-be") for body in bodies] == ["ạ" * 66, "😀bbbbb"]


def test_decomposed_vietnamese_is_normalised_before_encoding() -> None:
    decomposed = unicodedata.normalize("NFD", VIETNAMESE_OTP)
    assert len(decomposed) > 70
    message = encode_message(decomposed, reference=1)
    assert message.parts == (VIETNAMESE_OTP.encode("utf-16-be"),)


def test_text_needing_more_than_255_parts_is_refused() -> None:
    with pytest.raises(MessageTooLongError):
        encode_message("a" * 153 * 256, reference=1)


def test_sixteen_bit_reference_headers_are_understood() -> None:
    concatenation, body = split_udh(b"\x06\x08\x04\x01\x02\x03\x01hi")
    assert concatenation == Concatenation(reference=0x0102, total=3, sequence=1)
    assert body == b"hi"


def test_unrelated_header_elements_are_skipped() -> None:
    # A port-addressing element (0x05) before the concatenation element.
    concatenation, body = split_udh(b"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x09\x02\x02hi")
    assert concatenation == Concatenation(reference=9, total=2, sequence=2)
    assert body == b"hi"


@pytest.mark.parametrize("bad", [b"", b"\x09\x00\x03", b"\x05\x00\x03\x01\x02\x03x", b"\x03\x00\x03\x01"])
def test_malformed_headers_are_rejected(bad: bytes) -> None:
    with pytest.raises(UdhError):
        split_udh(bad)


def test_sar_tlvs_describe_a_part() -> None:
    tlvs = (
        Tlv.uint(Tag.SAR_MSG_REF_NUM, 300, 2),
        Tlv.uint(Tag.SAR_TOTAL_SEGMENTS, 2, 1),
        Tlv.uint(Tag.SAR_SEGMENT_SEQNUM, 2, 1),
    )
    assert sar_concatenation(tlvs) == Concatenation(reference=300, total=2, sequence=2)
    assert sar_concatenation(()) is None
    with pytest.raises(UdhError):
        sar_concatenation(tlvs[:2])


def test_unsupported_data_coding_is_refused_on_decode() -> None:
    with pytest.raises(ValueError, match="0x04"):
        decode_text(0x04, b"\x00")
