"""BER of the file-transfer body part (FTBP, X.420 §7.4.12 and §20) ⇄ the FileTransfer model:
FTAM contents type, environment, file attributes (name, times, size) and the file's octets."""

from __future__ import annotations

import re
from datetime import datetime
from email.message import Message
from functools import lru_cache

from waypost.asn1 import (
    BIT_STRING,
    EXTERNAL,
    GENERAL_STRING,
    GENERALIZED_TIME,
    GRAPHIC_STRING,
    OCTET_STRING,
    OID,
    SEQUENCE,
    Element,
    constructed,
    context,
    encode_int,
    encode_octets,
    encode_oid,
    encode_time,
    encode_tlv,
    sequence,
)
from waypost.x400.ipm_bodies import OCTET_STREAM, FileTransfer

# X.420 §7.4.12 (module IPMSFileTransferBodyPartType, IMPLICIT TAGS):
# file-transfer-body-part ::= { PARAMETERS FileTransferParameters IDENTIFIED BY
# id-ep-file-transfer, DATA FileTransferData IDENTIFIED BY id-et-file-transfer };
# id-ep = {id-ipms 11}, id-et = {id-ipms 4}.
ID_EP_FILE_TRANSFER = "2.6.1.11.12"
ID_ET_FILE_TRANSFER = "2.6.1.4.12"
# ISO 8571 document types (FileTransferParameters contents-type) and the abstract
# syntaxes of their data: FTAM-1 unstructured text, FTAM-3 unstructured binary.
FTAM_1_UNSTRUCTURED_TEXT = "1.0.8571.5.1"
FTAM_3_UNSTRUCTURED_BINARY = "1.0.8571.5.3"
UNSTRUCTURED_TEXT_SYNTAX = "1.0.8571.2.3"
UNSTRUCTURED_BINARY_SYNTAX = "1.0.8571.2.4"

# FileTransferParameters ::= SEQUENCE { related-stored-file [0] OPTIONAL, contents-type
# [1] ContentsTypeParameter DEFAULT document-type FTAM-3, environment [2] OPTIONAL,
# compression [3] OPTIONAL, file-attributes [4] OPTIONAL, extensions [5] OPTIONAL }
CONTENTS_TYPE = context(1, True)  # a CHOICE: the tag is explicit
DOCUMENT_TYPE = context(0, True)  # document-type [0] SEQUENCE { document-type-name OID, … }
ENVIRONMENT = context(2, True)
COMPRESSION = context(3, True)
FILE_ATTRIBUTES = context(4, True)
# EnvironmentParameter ::= SEQUENCE { application-reference [0], machine [1],
# operating-system [2], user-visible-string [3] SEQUENCE OF GraphicString }
USER_VISIBLE_STRING = context(3, True)
# FileAttributes (ISO 8571 attributes): pathname is Pathname-Attribute, a CHOICE of
# incomplete-pathname [0] / complete-pathname [23], each a SEQUENCE OF GraphicString; the
# times and sizes are CHOICEs under explicit tags whose actual-values is [1].
INCOMPLETE_PATHNAME = context(0, True)
COMPLETE_PATHNAME = context(23, True)
CREATION = context(4, True)
LAST_MODIFICATION = context(5, True)
OBJECT_SIZE = context(13, True)
ACTUAL_VALUES = context(1)
# EXTERNAL's encoding CHOICE: single-ASN1-type [0], octet-aligned [1], arbitrary [2].
SINGLE_ASN1_TYPE = context(0, True)
OCTET_ALIGNED = context(1)
ARBITRARY = context(2)


# RFC 2045 §5.1: type "/" subtype, tokens, then parameters.
_MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+\s*(;|\Z)")


class FileTransferError(ValueError):
    """An FTBP this codec cannot read (compressed data, no data); the message says why."""


def encode_ftbp_parameters(part: FileTransfer) -> bytes:
    """FileTransferParameters (a SEQUENCE) of a FileTransfer."""
    text = part.content_type.startswith("text/")
    document = FTAM_1_UNSTRUCTURED_TEXT if text else FTAM_3_UNSTRUCTURED_BINARY
    fields = [constructed(CONTENTS_TYPE, constructed(DOCUMENT_TYPE, encode_oid(document)))]
    mime_type = _mime_type_text(part)
    if mime_type is not None:
        # The MIME type the document type does not say is named in the environment's
        # user-visible-string, where an X.400 user agent shows it.
        strings = constructed(USER_VISIBLE_STRING, _graphic(mime_type))
        fields.append(constructed(ENVIRONMENT, strings))
    attributes = []
    if part.filename is not None:
        attributes.append(constructed(INCOMPLETE_PATHNAME, _graphic(part.filename)))
    for tag, when in ((CREATION, part.created), (LAST_MODIFICATION, part.modified)):
        if when is not None:
            attributes.append(constructed(tag, encode_time(when, ACTUAL_VALUES, GENERALIZED_TIME)))
    attributes.append(constructed(OBJECT_SIZE, encode_int(len(part.data), ACTUAL_VALUES)))
    fields.append(constructed(FILE_ATTRIBUTES, *attributes))
    return sequence(*fields)


def encode_ftbp_data(part: FileTransfer) -> bytes:
    """FileTransferData ::= SEQUENCE OF EXTERNAL: one EXTERNAL naming the FTAM abstract
    syntax of the contents type, the file's octets octet-aligned."""
    syntax = (
        UNSTRUCTURED_TEXT_SYNTAX
        if part.content_type.startswith("text/")
        else UNSTRUCTURED_BINARY_SYNTAX
    )
    return sequence(
        constructed(EXTERNAL, encode_oid(syntax), encode_octets(part.data, OCTET_ALIGNED))
    )


def read_ftbp(parameters: Element | None, data: Element) -> FileTransfer:
    """A FileTransfer from the parameters' value (FileTransferParameters, or None) and the
    data value (FileTransferData) of an FTBP; raises FileTransferError or BERError."""
    document = FTAM_3_UNSTRUCTURED_BINARY
    mime_type: str | None = None
    filename: str | None = None
    times: dict[str, datetime] = {}
    if parameters is not None:
        parameters = parameters.expect(SEQUENCE, name="file-transfer-parameters")
        if parameters.find(COMPRESSION) is not None:
            raise FileTransferError("file-transfer: compressed data is not read")
        contents = parameters.find(CONTENTS_TYPE)
        if contents is not None:
            choice = contents.child(0, "contents-type")
            if choice.tag == DOCUMENT_TYPE:
                document = choice.child(0, "document-type-name").expect(OID).as_oid()
        environment = parameters.find(ENVIRONMENT)
        strings = environment.find(USER_VISIBLE_STRING) if environment is not None else None
        if strings is not None and len(strings):
            mime_type = _read_graphic(strings.child(0, "user-visible-string"))
        attributes = parameters.find(FILE_ATTRIBUTES)
        if attributes is not None:
            filename, times = _read_attributes(attributes.named("file-attributes"))
    octets = b"".join(_external_octets(e.expect(EXTERNAL)) for e in data.expect(SEQUENCE))
    content_type, params = _parse_mime_type(mime_type, document)
    return FileTransfer(
        data=octets,
        filename=filename,
        content_type=content_type,
        parameters=params,
        created=times.get("created"),
        modified=times.get("modified"),
    )


def _read_attributes(attributes: Element) -> tuple[str | None, dict[str, datetime]]:
    filename: str | None = None
    times: dict[str, datetime] = {}
    for item in attributes:
        if item.tag in (INCOMPLETE_PATHNAME, COMPLETE_PATHNAME) and len(item):
            # A pathname names directories of the sender's file store: the last
            # component is the file's name.
            filename = _read_graphic(item.children()[-1].named("pathname"))
        elif item.tag in (CREATION, LAST_MODIFICATION):
            value = item.child(0, "date-and-time")
            if value.tag == ACTUAL_VALUES:  # else no-value-available [0]
                key = "created" if item.tag == CREATION else "modified"
                times[key] = value.as_time(GENERALIZED_TIME)
    return filename, times


def _external_octets(external: Element) -> bytes:
    """The octets an EXTERNAL carries, whichever of its encodings it uses."""
    for part in external:
        if part.tag.number == OCTET_ALIGNED.number and part.tag.cls == OCTET_ALIGNED.cls:
            if part.tag.constructed:
                return b"".join(_leaf_octets(part))
            return bytes(part.value)
        if part.tag == SINGLE_ASN1_TYPE:
            return b"".join(_leaf_octets(part))
        if part.tag.number == ARBITRARY.number and part.tag.cls == ARBITRARY.cls:
            return part.as_bits()[0]
    raise FileTransferError(f"{external.path}: an EXTERNAL without its data")


def _leaf_octets(element: Element) -> list[bytes]:
    """The contents of every primitive element inside (an OCTET STRING, a character
    string, or a sequence of them as FTAM data elements are)."""
    found: list[bytes] = []
    for child in element:
        if child.tag.constructed:
            found.extend(_leaf_octets(child))
        elif child.tag in (OCTET_STRING, GRAPHIC_STRING, GENERAL_STRING, BIT_STRING) or (
            child.tag.cls.name == "UNIVERSAL" and child.tag.number in (19, 20, 22, 26)
        ):
            found.append(child.as_bits()[0] if child.tag == BIT_STRING else bytes(child.value))
    return found


def _mime_type_text(part: FileTransfer) -> str | None:
    """'type/sub; name="value"' when the document type alone does not give the MIME type."""
    implied = "text/plain" if part.content_type.startswith("text/") else OCTET_STREAM
    if part.content_type == implied and not part.parameters:
        return None
    params = "".join(f'; {name}="{_quote(value)}"' for name, value in part.parameters)
    return f"{part.content_type}{params}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


# The same few MIME types come in file after file; the result is immutable.
@lru_cache(maxsize=256)
def _parse_mime_type(text: str | None, document: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    default = "text/plain" if document == FTAM_1_UNSTRUCTURED_TEXT else OCTET_STREAM
    if text is None or not _MIME_TYPE.match(text):
        return default, ()  # no string, or one that is no MIME type (a note for the user)
    header = Message()
    header["Content-Type"] = text
    params = header.get_params(failobj=[])[1:]
    return header.get_content_type(), tuple((n, str(v)) for n, v in params)


def _graphic(text: str) -> bytes:
    # GraphicString carries ISO 2022 sets; a name outside ASCII goes as UTF-8 (and is
    # read as UTF-8 when it is valid UTF-8, else as Latin-1).
    return encode_tlv(GRAPHIC_STRING, text.encode("utf-8"))


def _read_graphic(element: Element) -> str:
    raw = element.as_string(GRAPHIC_STRING, check=False).encode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
