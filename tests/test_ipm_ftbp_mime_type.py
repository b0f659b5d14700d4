"""The MIME type an FTBP's user-visible string names is read once per string and
document type: what is remembered is what reading it again gives."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from waypost.x400.ipm_ftbp import (
    FTAM_1_UNSTRUCTURED_TEXT,
    FTAM_3_UNSTRUCTURED_BINARY,
    _parse_mime_type,
)

mime_texts = st.none() | st.builds(
    lambda kind, params: kind + params,
    st.sampled_from(["application/pdf", "text/plain", "Text/HTML", "x", "image/png "]),
    st.lists(st.sampled_from([*'; =a"b\\é', "name", "charset"]), max_size=12).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(mime_texts, st.sampled_from([FTAM_1_UNSTRUCTURED_TEXT, FTAM_3_UNSTRUCTURED_BINARY]))
@example('application/pdf; name="a.pdf"', FTAM_3_UNSTRUCTURED_BINARY)
@example(None, FTAM_1_UNSTRUCTURED_TEXT)
def test_a_remembered_mime_type_is_the_one_read(text: str | None, document: str) -> None:
    read = _parse_mime_type.__wrapped__(text, document)
    assert _parse_mime_type(text, document) == read
    assert _parse_mime_type(text, document) == read  # remembered
    other = FTAM_1_UNSTRUCTURED_TEXT if document != FTAM_1_UNSTRUCTURED_TEXT else "1.2.3"
    # The document type is part of what is remembered: it gives the default type.
    assert _parse_mime_type(text, other) == _parse_mime_type.__wrapped__(text, other)
