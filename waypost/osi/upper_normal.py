"""1988 normal mode above the session: RTSE APDUs inside ACSE inside presentation (X.228 10).

The RTORQ/RTOAC/RTORJ ride in the user information of the AARQ/AARE, in the CP,
CPA and CPR PPDUs; RTTRs and RTTPs in P-DATA; the MTS-APDU in an EXTERNAL of
id-as-mtse; the bind values `[16]`/`[17]`/`[18] EXPLICIT` (X.411 12.2.1).
"""

from __future__ import annotations

import contextlib
from typing import Final

from waypost import asn1 as ber
from waypost.asn1 import fast
from waypost.osi import acse as a
from waypost.osi import rtse as r
from waypost.osi.errors import Layer, LocalProtocolError, RemoteProtocolError
from waypost.osi.presentation import (
    ACSE,
    ID_AS_MTA_RTSE,
    ID_AS_MTSE,
    P1_CONTEXTS,
    PresentationConnection,
)
from waypost.osi.presentation import State as PresentationState
from waypost.osi.presentation_ppdu import (
    PDV,
    AbortReason,
    ProviderAbortPPDU,
    UserAbortPPDU,
    decode_abort,
    decode_refuse,
    encode_abort,
)
from waypost.osi.stack_events import AssociationSettings
from waypost.osi.upper import Connection, connect_rtorq, turn_priority

__all__ = ["ID_AC_MTS_TRANSFER", "NormalMode"]

#: id-ac-mts-transfer: the application context of P1 in 1988 normal mode.
ID_AC_MTS_TRANSFER: Final = "2.6.0.1.6"
_TAG_BIND_ARGUMENT: Final = 16
_TAG_BIND_RESULT: Final = 17
_TAG_BIND_ERROR: Final = 18
#: The contexts P1_CONTEXTS proposes, used until the presentation connection is up.
_DEFAULT_ACSE: Final = 1
_DEFAULT_RTSE: Final = 3
_DEFAULT_MTSE: Final = 5


class NormalMode:
    """The presentation connection and the ACSE and RTSE encodings of one association."""

    def __init__(self) -> None:
        self._presentation = PresentationConnection()
        #: Context ids by abstract syntax, once the presentation connection is up.
        self._contexts: dict[str, int] = {}

    @property
    def presentation(self) -> PresentationConnection:
        return self._presentation

    def _pctx(self, syntax: str, default: int) -> int:
        known = self._contexts.get(syntax)
        if known is not None:
            return known
        try:
            ident = self._presentation.context_id(syntax)
        except LocalProtocolError:
            return default
        if self._presentation.state is PresentationState.CONNECTED:
            self._contexts[syntax] = ident  # agreed for good
        return ident

    def _agreed(self) -> None:
        """Each of the three P1 contexts must have been agreed (X.419 A.2)."""
        for syntax in (ACSE, ID_AS_MTA_RTSE, ID_AS_MTSE):
            try:
                self._presentation.context_id(syntax)
            except LocalProtocolError as exc:
                # The peer left one out: an AB with no user data, as for any such fault.
                raise RemoteProtocolError(Layer.PRESENTATION, str(exc), abort=b"") from None

    def _pdv(self, data: bytes, syntax: str, what: str) -> bytes:
        """The one PDV of P-DATA (or FN/DN user data) in the context of `syntax`."""
        pdvs = self._presentation.unwrap(data)
        want = self._pctx(syntax, -1)
        if len(pdvs) != 1 or pdvs[0].context_id != want:
            raise RemoteProtocolError(
                Layer.PRESENTATION, f"{what}: expected one PDV in context {want}"
            )
        return pdvs[0].value

    def _acse_pdv(self, pdvs: tuple[PDV, ...], what: str) -> bytes:
        acse_ctx = self._pctx(ACSE, _DEFAULT_ACSE)
        found = [p for p in pdvs if p.context_id == acse_ctx]
        if len(found) != 1:
            raise RemoteProtocolError(
                Layer.PRESENTATION, f"{what} must carry one PDV in the ACSE context"
            )
        return found[0].value

    def _rtse_external(self, items: tuple[a.External, ...], what: str) -> r.Apdu:
        ctx = self._pctx(ID_AS_MTA_RTSE, _DEFAULT_RTSE)
        for ext in items:
            if ext.context_id == ctx and not ext.octet_aligned:
                return r.decode_rtse_apdu(ext.value)
        raise RemoteProtocolError(Layer.ACSE, f"{what} carries no RTSE APDU in context {ctx}")

    def _rtse_information(self, apdu: r.Apdu) -> tuple[a.External, ...]:
        ctx = self._pctx(ID_AS_MTA_RTSE, _DEFAULT_RTSE)
        return (a.External(context_id=ctx, value=r.encode_rtse_apdu(apdu)),)

    def _acse_out(self, apdu: a.Apdu) -> bytes:
        return self._presentation.wrap([(self._pctx(ACSE, _DEFAULT_ACSE), a.encode_apdu(apdu))])

    # -- association establishment -------------------------------------------------

    def connect(self, settings: AssociationSettings, data: r.ConnectionData) -> bytes:
        if isinstance(data, r.Open):
            data = r.Open(value=_explicit(_TAG_BIND_ARGUMENT, data.value))
        rtorq = connect_rtorq(settings, data, application_protocol=None)
        aarq = a.AARQ(
            application_context=ID_AC_MTS_TRANSFER,
            user_information=(
                a.External(context_id=_DEFAULT_RTSE, value=r.encode_rtse_apdu(rtorq)),
            ),
        )
        return self._presentation.send_connect(
            [PDV(context_id=_DEFAULT_ACSE, value=a.encode_apdu(aarq))],
            contexts=P1_CONTEXTS,
            called_selector=settings.selectors.called_psel,
            calling_selector=settings.selectors.calling_psel,
        )

    def read_connect(self, user_data: bytes) -> Connection:
        cp = self._presentation.receive_connect(user_data)
        self._agreed()
        aarq = a.decode_apdu(self._acse_pdv(cp.user_data, "CP"))
        if not isinstance(aarq, a.AARQ):
            raise RemoteProtocolError(Layer.ACSE, f"{type(aarq).__name__} in the CP, not an AARQ")
        if aarq.application_context != ID_AC_MTS_TRANSFER:
            raise RemoteProtocolError(
                Layer.ACSE, f"application context {aarq.application_context} is not P1"
            )
        rtorq = self._rtse_external(aarq.user_information, "AARQ")
        if not isinstance(rtorq, r.RTORQ):
            raise RemoteProtocolError(Layer.RTSE, "the AARQ must carry an RTORQ")
        bind = b""
        if isinstance(rtorq.connection_data, r.Open):
            bind = _unexplicit(rtorq.connection_data.value, _TAG_BIND_ARGUMENT)
        return Connection(
            rtorq=rtorq,
            bind_argument=bind,
            calling_psel=cp.calling_selector,
            called_psel=cp.called_selector,
        )

    def accept(
        self,
        *,
        checkpoint_size: int,
        window_size: int,
        data: r.ConnectionData,
        responding_psel: bytes | None,
    ) -> bytes:
        if isinstance(data, r.Open):
            data = r.Open(value=_explicit(_TAG_BIND_RESULT, data.value))
        rtoac = r.RTOAC(
            checkpoint_size=checkpoint_size, window_size=window_size, connection_data=data
        )
        aare = a.AARE(
            application_context=ID_AC_MTS_TRANSFER,
            user_information=self._rtse_information(rtoac),
        )
        return self._presentation.send_accept(
            [PDV(context_id=self._pctx(ACSE, _DEFAULT_ACSE), value=a.encode_apdu(aare))],
            responding_selector=responding_psel,
        )

    def read_accept(self, user_data: bytes) -> tuple[r.RTOAC, bytes]:
        cpa = self._presentation.receive_accept(user_data)
        self._agreed()
        aare = a.decode_apdu(self._acse_pdv(cpa.user_data, "CPA"))
        if not isinstance(aare, a.AARE) or aare.result is not a.AssociateResult.ACCEPTED:
            raise RemoteProtocolError(Layer.ACSE, "the CPA must carry an accepting AARE")
        rtoac = self._rtse_external(aare.user_information, "AARE")
        if not isinstance(rtoac, r.RTOAC):
            raise RemoteProtocolError(Layer.RTSE, "the AARE must carry an RTOAC")
        result = b""
        if isinstance(rtoac.connection_data, r.Open):
            result = _unexplicit(rtoac.connection_data.value, _TAG_BIND_RESULT)
        return rtoac, result

    def refuse(self, reason: r.RefuseReason, bind_error: bytes | None) -> bytes:
        error = None if bind_error is None else _explicit(_TAG_BIND_ERROR, bind_error)
        aare = a.AARE(
            application_context=ID_AC_MTS_TRANSFER,
            result=a.AssociateResult.REJECTED_PERMANENT,
            user_information=self._rtse_information(r.RTORJ(refuse_reason=reason, user_data=error)),
        )
        return self._presentation.send_refuse(
            [PDV(context_id=self._pctx(ACSE, _DEFAULT_ACSE), value=a.encode_apdu(aare))]
        )

    def read_refuse(self, user_data: bytes) -> r.RTORJ | None:
        rtorj: r.RTORJ | None = None
        try:
            if user_data:
                for pdv in decode_refuse(user_data).user_data:
                    if pdv.context_id == _DEFAULT_ACSE:
                        aare = a.decode_apdu(pdv.value)
                        if isinstance(aare, a.AARE):
                            rj = self._rtse_external(aare.user_information, "AARE")
                            rtorj = rj if isinstance(rj, r.RTORJ) else None
        except RemoteProtocolError:
            return None  # the refusal stands; its user data only informs
        if rtorj is None or rtorj.user_data is None:
            return rtorj
        with contextlib.suppress(RemoteProtocolError):  # else keep it as it came
            return r.RTORJ(
                refuse_reason=rtorj.refuse_reason,
                user_data=_unexplicit(rtorj.user_data, _TAG_BIND_ERROR),
            )
        return rtorj

    # -- data phase ---------------------------------------------------------------

    def transfer_payload(self, apdu: bytes) -> bytes:
        return _mtse_external(self._pctx(ID_AS_MTSE, _DEFAULT_MTSE), apdu)

    def read_transfer(self, payload: bytes) -> bytes:
        """The MTS-APDU inside `EXTERNAL { ctx id-as-mtse, [0] { apdu } }`.

        In the form senders write, the wrapper is read in place and the APDU's own
        elements are left to the P1 decoder above (one scan, not two): a malformed
        APDU is then the P1 layer's error. Any other form is checked element by element.
        """
        want = self._pctx(ID_AS_MTSE, _DEFAULT_MTSE)
        found = fast.read_ident_single(payload, (fast.TAG_EXTERNAL,))
        if found is not None:
            if found[0] != want:
                raise RemoteProtocolError(
                    Layer.RTSE, f"APDU in context {found[0]}, not id-as-mtse ({want})"
                )
            return payload[found[1] :]
        try:
            return _read_mtse_external(payload, want)
        except ber.BERError as exc:
            raise RemoteProtocolError(
                Layer.RTSE, str(exc), path=exc.path, offset=exc.offset
            ) from None

    def data(self, segment: bytes) -> bytes:
        rttr = r.encode_rttr(segment)
        return self._presentation.wrap_one(self._pctx(ID_AS_MTA_RTSE, _DEFAULT_RTSE), rttr)

    def read_data(self, payload: bytes) -> bytes:
        value = self._pdv(payload, ID_AS_MTA_RTSE, "P-DATA")
        segment = r.decode_rttr(value)  # as RTTRs come, else the full decoder
        if segment is None:
            apdu = r.decode_rtse_apdu(value)
            if not isinstance(apdu, r.RTTR):
                raise RemoteProtocolError(
                    Layer.RTSE, f"{type(apdu).__name__} in P-DATA, not an RTTR"
                )
            segment = apdu.data
        return segment

    def turn_please(self, priority: int) -> bytes:
        rttp = r.encode_rtse_apdu(r.RTTP(priority=priority))
        return self._presentation.wrap([(self._pctx(ID_AS_MTA_RTSE, _DEFAULT_RTSE), rttp)])

    def read_turn_please(self, user_data: bytes) -> int:
        return turn_priority(self._pdv(user_data, ID_AS_MTA_RTSE, "P-TOKEN-PLEASE"))

    # -- release and abort -----------------------------------------------------------

    def release(self) -> bytes:
        return self._acse_out(a.RLRQ(reason=0))

    def read_release(self, user_data: bytes) -> bytes:
        if not isinstance(a.decode_apdu(self._pdv(user_data, ACSE, "FN")), a.RLRQ):
            raise RemoteProtocolError(Layer.ACSE, "FN must carry an RLRQ")
        return self._acse_out(a.RLRE(reason=0))

    def read_release_answer(self, user_data: bytes) -> None:
        if not isinstance(a.decode_apdu(self._pdv(user_data, ACSE, "DN")), a.RLRE):
            raise RemoteProtocolError(Layer.ACSE, "DN must carry an RLRE")

    def user_abort(self, reason: r.AbortReason) -> bytes:
        return self._abort_rtab(r.RTAB(abort_reason=reason))

    def _abort_rtab(self, rtab: r.RTAB) -> bytes:
        """An ARU carrying an ABRT (service user) carrying the RTAB (X.228 10.4)."""
        abrt = a.ABRT(source=0, user_information=self._rtse_information(rtab))
        return self._abort_acse(a.encode_apdu(abrt))

    def _abort_acse(self, abrt: bytes) -> bytes:
        pdv = PDV(context_id=self._pctx(ACSE, _DEFAULT_ACSE), value=abrt)
        return encode_abort(UserAbortPPDU(user_data=(pdv,)))

    def protocol_error_abort(self, error: RemoteProtocolError) -> bytes:
        """The layer at fault says so: presentation an ARP, ACSE an ABRT of the service
        provider, RTSE an RTAB; a fault of the session's use carries no user data."""
        abort = error.abort
        if error.layer is Layer.PRESENTATION:
            if isinstance(abort, bytes):
                return abort
            reason = AbortReason.UNEXPECTED_PARAMETER
            return encode_abort(ProviderAbortPPDU(reason=reason))
        if error.layer is Layer.ACSE:
            abrt = abort if isinstance(abort, bytes) else a.encode_apdu(a.ABRT(source=1))
            return self._abort_acse(abrt)
        if error.layer is Layer.RTSE:
            rtab = abort if isinstance(abort, r.RTAB) else None
            return self._abort_rtab(rtab or r.RTAB(abort_reason=r.AbortReason.PROTOCOL_ERROR))
        return b""

    def read_abort(self, user_data: bytes) -> tuple[Layer, str] | None:
        if not user_data:
            return None
        said: tuple[Layer, str] | None = None
        with contextlib.suppress(RemoteProtocolError):  # the abort stands; this only informs
            ppdu = decode_abort(user_data)
            if isinstance(ppdu, ProviderAbortPPDU):
                return Layer.PRESENTATION, f"ARP {_name(ppdu.reason)}"
            said = Layer.PRESENTATION, "ARU"
            for pdv in ppdu.user_data:
                abrt = a.decode_apdu(pdv.value)
                if isinstance(abrt, a.ABRT):
                    said = Layer.ACSE, f"ABRT source {abrt.source}"
                    rtab = self._rtse_external(abrt.user_information, "ABRT")
                    if isinstance(rtab, r.RTAB):
                        said = Layer.RTSE, f"RTAB {_name(rtab.abort_reason)}"
        return said


def _name(value: object) -> str:
    return "absent" if value is None else getattr(value, "name", str(value))


def _mtse_external(context_id: int, apdu: bytes) -> bytes:
    """`EXTERNAL { INTEGER context_id, [0] { apdu } }`, joined once."""
    encoded = fast.encode_ident_single((fast.TAG_EXTERNAL,), context_id, apdu)
    if encoded is None:
        return ber.constructed(
            ber.EXTERNAL, ber.encode_int(context_id), ber.constructed(ber.context(0), apdu)
        )
    return encoded


def _read_mtse_external(data: bytes, want: int) -> bytes:
    """`_mtse_external` read back by the full decoder, element by element."""
    limits = ber.Limits(max_length=len(data), max_total=len(data) + 1)
    ext = ber.decode(data, limits=limits, name="mts-external").expect(ber.EXTERNAL)
    ident = ext.child(ber.INTEGER, "indirect-reference").as_int()
    if ident != want:
        raise RemoteProtocolError(Layer.RTSE, f"APDU in context {ident}, not id-as-mtse ({want})")
    value = ext.child(ber.context(0, True), "single-ASN1-type")
    if len(ext) != 2:
        raise ext.error("EXTERNAL must hold a context id and a single-ASN1-type")
    return b"".join(bytes(c.raw) for c in value.children())


def _explicit(number: int, value: bytes) -> bytes:
    return ber.constructed(ber.context(number), value)


def _unexplicit(value: bytes, number: int) -> bytes:
    """The one element inside `[number] EXPLICIT` (the bind argument/result/error)."""
    try:
        element = ber.decode(value, limits=ber.Limits(max_total=len(value) + 1))
    except ber.BERError as exc:
        raise RemoteProtocolError(Layer.RTSE, f"bind value: {exc}") from None
    if element.tag != ber.context(number, True) or len(element) != 1:
        raise RemoteProtocolError(Layer.RTSE, f"bind value is not [{number}] EXPLICIT")
    return bytes(element.child(0).raw)
