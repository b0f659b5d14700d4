"""BER of the body parts in waypost.x400.ipm_bodies (X.420 §7.4): ia5-text, general-text,
bilaterally-defined, message and the file-transfer body part (its BER in ipm_ftbp.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from waypost.asn1 import (
    EXTERNAL,
    GENERAL_STRING,
    IA5_STRING,
    INTEGER,
    OID,
    SEQUENCE,
    SET,
    Element,
    constructed,
    context,
    decode,
    encode_int,
    encode_octets,
    encode_oid,
    encode_tlv,
    sequence,
)
from waypost.asn1.fast import read_length
from waypost.x400.ipm_bodies import (
    BilaterallyDefined,
    BodyPart,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
    charset_of_registrations,
)
from waypost.x400.ipm_ftbp import (
    ID_EP_FILE_TRANSFER,
    ID_ET_FILE_TRANSFER,
    FileTransferError,
    encode_ftbp_data,
    encode_ftbp_parameters,
    read_ftbp,
)

# X.420 §7.4, BodyPart ::= CHOICE { basic CHOICE { ia5-text [0], … message [9], …,
# bilaterally-defined [14] }, extended [15] } (IMPLICIT TAGS).
IA5_TEXT = context(0, True)
MESSAGE = context(9, True)
BILATERALLY_DEFINED = context(14)
BILATERALLY_DEFINED_CONSTRUCTED = context(14, True)
EXTENDED = context(15, True)
PARAMETERS = context(0, True)
INSTANCE_VALUE = context(0, True)
# X.420 §7.4.12: id-et-general-text {id-et 11} names the data, id-ep-general-text
# {id-ep 11} the parameters; id-et = {id-ipms 4}, id-ep = {id-ipms 11}, id-ipms = 2.6.1.
ID_ET_GENERAL_TEXT = "2.6.1.4.11"
ID_EP_GENERAL_TEXT = "2.6.1.11.11"
# X.420 §7.4.1: IA5TextParameters' repertoire [0], ia5 (5) by default.
REPERTOIRE = context(0)
REPERTOIRE_IA5 = 5


class UnsupportedBodyPartError(ValueError):
    """A body part this codec does not encode or decode yet; the message names it."""


class HeadingCodec(Protocol):
    """How a forwarded IPM's Heading (X.420 §7.2) is written and read: the heading
    mapping implements this with its own heading type."""

    def encode_heading(self, heading: object) -> bytes:
        """The BER of a Heading (a SET)."""
        ...

    def read_heading(self, element: Element) -> object:
        """The heading of a decoded Heading element."""
        ...


class RawHeading:
    """The codec used until the heading mapping is wired in: the heading is its BER,
    kept as received."""

    def encode_heading(self, heading: object) -> bytes:
        if not isinstance(heading, bytes):
            raise TypeError("this heading codec takes the BER of a Heading")
        return heading

    def read_heading(self, element: Element) -> object:
        return bytes(element.expect(SET, name="heading").raw)


RAW_HEADING = RawHeading()


def is_basic(part: BodyPart) -> bool:
    """Whether a body part goes as one of X.420's basic body parts (§7.4), not as an
    extended one ([15], which X.420 (1984) does not have)."""
    return isinstance(part, IA5Text | BilaterallyDefined | MessagePart)


def encode_body_part(part: BodyPart, headings: HeadingCodec = RAW_HEADING) -> bytes:
    """The BER of one body part; raises UnsupportedBodyPartError for a kind it lacks."""
    if isinstance(part, IA5Text):
        # The repertoire is left to its DEFAULT (ia5), as X.690 §11.5 (DER) and most
        # IPM agents do.
        return constructed(IA5_TEXT, constructed(SET), encode_tlv(IA5_STRING, part.text.encode()))
    if isinstance(part, GeneralText):
        registrations = constructed(SET, *map(encode_int, part.registrations))
        text = encode_tlv(GENERAL_STRING, part.text.encode(part.charset))
        return _extended(ID_EP_GENERAL_TEXT, registrations, ID_ET_GENERAL_TEXT, text)
    if isinstance(part, FileTransfer):
        # X.420 §7.4.12: an extended body part, FileTransferParameters and FileTransferData.
        parameters = encode_ftbp_parameters(part)
        return _extended(
            ID_EP_FILE_TRANSFER, parameters, ID_ET_FILE_TRANSFER, encode_ftbp_data(part)
        )
    if isinstance(part, BilaterallyDefined):
        return encode_octets(part.data, BILATERALLY_DEFINED)
    if isinstance(part, MessagePart):
        # X.420 §7.4: MessageBodyPart ::= SEQUENCE { parameters MessageParameters (a SET,
        # its delivery time and envelope optional), data IPM }, IPM ::= SEQUENCE
        # { heading, body }.
        ipm = sequence(headings.encode_heading(part.heading), encode_body(part.body, headings))
        return constructed(MESSAGE, constructed(SET), ipm)
    raise UnsupportedBodyPartError(f"{type(part).__name__}: no BER encoding yet")


def _extended(parameters_type: str, parameters: bytes, data_type: str, data: bytes) -> bytes:
    """ExtendedBodyPart ::= SEQUENCE { parameters [0] INSTANCE OF TYPE-IDENTIFIER, data
    INSTANCE OF TYPE-IDENTIFIER } (X.420 §7.4.3), each an OID and its [0] value."""
    return constructed(
        EXTENDED,
        constructed(
            PARAMETERS, encode_oid(parameters_type), constructed(INSTANCE_VALUE, parameters)
        ),
        constructed(EXTERNAL, encode_oid(data_type), constructed(INSTANCE_VALUE, data)),
    )


def encode_body(parts: Sequence[BodyPart], headings: HeadingCodec = RAW_HEADING) -> bytes:
    """An IPM's Body, SEQUENCE OF BodyPart."""
    return sequence(*(encode_body_part(part, headings) for part in parts))


def decode_body_part(data: bytes, headings: HeadingCodec = RAW_HEADING) -> BodyPart:
    """One body part from its BER; raises BERError (bad BER, naming the path),
    UnsupportedBodyPartError (a kind not read yet) or ValueError (text its type forbids)."""
    return read_body_part(decode(data, name="body-part"), headings)


def read_body_part(element: Element, headings: HeadingCodec = RAW_HEADING) -> BodyPart:
    """One body part from a decoded element (see decode_body_part)."""
    if element.tag == IA5_TEXT:
        usual = _usual_ia5_text(element.value)
        return IA5Text(text=usual) if usual is not None else _read_ia5_text(element)
    if element.tag in (BILATERALLY_DEFINED, BILATERALLY_DEFINED_CONSTRUCTED):
        return BilaterallyDefined(data=element.as_octets())
    if element.tag == EXTENDED:
        return _read_extended(element)
    if element.tag == MESSAGE:
        ipm = element.child(1, "data").expect(SEQUENCE)
        heading = headings.read_heading(ipm.child(0, "heading"))
        body = ipm.child(1, "body").expect(SEQUENCE)
        return MessagePart(heading=heading, body=tuple(read_body_part(p, headings) for p in body))
    raise UnsupportedBodyPartError(f"body part {element.tag}: not read yet")


def _read_ia5_text(element: Element) -> IA5Text:
    parameters = element.child(0, "parameters").expect(SET)
    repertoire = parameters.find(REPERTOIRE)
    if repertoire is not None and repertoire.as_int() != REPERTOIRE_IA5:
        raise UnsupportedBodyPartError("ia5-text: only the ia5 repertoire is read")
    return IA5Text(text=element.child(1, "data").as_string(IA5_STRING))


def _usual_ia5_text(value: memoryview) -> str | None:
    """The text of ia5-text contents as most agents send them, read from the octets: an
    empty IA5TextParameters SET (the ia5 repertoire by default, X.420 §7.4.1), then one
    primitive IA5String of ASCII, nothing after. Anything else is None, for _read_ia5_text
    (which names the path of what is wrong)."""
    if len(value) < 4 or value[0] != 0x31 or value[1] != 0 or value[2] != 0x16:
        return None
    length, start = read_length(value, 3)
    if length < 0 or start + length != len(value):
        return None
    try:
        return str(value[start:], "ascii")
    except UnicodeDecodeError:
        return None


def _read_extended(element: Element) -> BodyPart:
    data = element.find(EXTERNAL)
    if data is None:
        raise UnsupportedBodyPartError("extended body part without data")
    kind = data.child(0, "type-id").expect(OID).as_oid()
    if kind == ID_ET_FILE_TRANSFER:
        parameters = element.find(PARAMETERS)
        value = parameters.child(1, "value").child(0) if parameters is not None else None
        try:
            return read_ftbp(value, data.child(1, "value").child(0, "file-transfer-data"))
        except FileTransferError as error:
            raise UnsupportedBodyPartError(str(error)) from None
    if kind != ID_ET_GENERAL_TEXT:
        raise UnsupportedBodyPartError(f"extended body part {kind}: not read yet")
    registrations: set[int] = set()
    parameters = element.find(PARAMETERS)
    if parameters is not None:
        value = parameters.child(1, "value").child(0, "registrations").expect(SET)
        registrations = {item.expect(INTEGER).as_int() for item in value}
    charset = charset_of_registrations(frozenset(registrations))
    if charset is None:
        raise UnsupportedBodyPartError(f"general-text repertoire {sorted(registrations)}")
    string = data.child(1, "value").child(0, "text").expect(GENERAL_STRING)
    octets = string.as_string(check=False).encode("latin-1")  # GeneralString reads as Latin-1
    if charset == "us-ascii":
        return IA5Text(text=octets.decode("ascii"))
    return GeneralText(charset=charset, text=octets.decode(charset))


def decode_body(data: bytes, headings: HeadingCodec = RAW_HEADING) -> list[BodyPart]:
    """An IPM's Body, SEQUENCE OF BodyPart."""
    return [read_body_part(part, headings) for part in decode(data, name="body")]
