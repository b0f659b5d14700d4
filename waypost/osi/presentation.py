"""ISO 8823 / X.226 presentation layer (normal mode, kernel), sans-I/O.

How the layers stack: the session layer hands up user data octets (CN, AC,
RF, DT, FN/DN, AB); `PresentationConnection` turns them into PPDUs
(`presentation_ppdu`) and back. CN user data ⇄ CP-type, AC ⇄ CPA, RF ⇄ CPR,
DT/FN/DN ⇄ User-data (PDVs tagged with a context id), AB ⇄ ARU/ARP. The
values inside the PDVs (ACSE APDUs in the ACSE context, RTSE APDUs in
id-as-mta-rtse) belong to the layers above; this object only negotiates the
contexts and checks every PDV names an agreed one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

from waypost.osi.errors import Layer, LocalProtocolError
from waypost.osi.presentation_ppdu import (
    BER,
    PDV,
    AbortReason,
    AcceptPPDU,
    ConnectPPDU,
    ContextDefinition,
    ContextResult,
    PresentationProtocolError,
    ProviderReason,
    RefusePPDU,
    RejectReason,
    Result,
    decode_accept,
    decode_connect,
    decode_single_pdv,
    decode_user_data,
    encode_accept,
    encode_connect,
    encode_refuse,
    encode_single_pdv,
    encode_user_data,
)

__all__ = [
    "ACSE",
    "ID_AS_MTA_RTSE",
    "ID_AS_MTSE",
    "P1_CONTEXTS",
    "LocalProtocolError",
    "PresentationConnection",
    "PresentationProtocolError",
    "State",
]

ACSE: Final = "2.2.1.0.1"
ID_AS_MTA_RTSE: Final = "2.6.0.2.12"
ID_AS_MTSE: Final = "2.6.0.2.7"
#: What X.400 P1 (1988 normal mode) proposes, with the ids PP uses.
P1_CONTEXTS: Final = (
    ContextDefinition(id=1, abstract_syntax=ACSE),
    ContextDefinition(id=3, abstract_syntax=ID_AS_MTA_RTSE),
    ContextDefinition(id=5, abstract_syntax=ID_AS_MTSE),
)


class State(enum.Enum):
    IDLE = "IDLE"
    AWAIT_CPA = "AWAIT_CPA"  # sent CP
    AWAIT_SEND_CPA = "AWAIT_SEND_CPA"  # got CP
    CONNECTED = "CONNECTED"
    REFUSED = "REFUSED"
    ERROR = "ERROR"


class PresentationConnection:
    """Context negotiation and PDV wrapping for one presentation connection."""

    def __init__(self, *, supported: Iterable[str] = (ACSE, ID_AS_MTA_RTSE, ID_AS_MTSE)) -> None:
        self.supported = frozenset(supported)
        self.state = State.IDLE
        #: Agreed contexts: id → abstract syntax.
        self.contexts: dict[int, str] = {}
        self._proposed: tuple[ContextDefinition, ...] = ()
        self._results: tuple[ContextResult, ...] = ()

    def _expect(self, state: State, what: str) -> None:
        if self.state is not state:
            raise LocalProtocolError(
                Layer.PRESENTATION, f"cannot {what} in state {self.state.name}"
            )

    def _remote_error(self, error: PresentationProtocolError) -> PresentationProtocolError:
        self.state = State.ERROR
        return error

    def context_id(self, abstract_syntax: str) -> int:
        """The agreed context id of an abstract syntax."""
        for ident, name in self.contexts.items():
            if name == abstract_syntax:
                return ident
        raise LocalProtocolError(Layer.PRESENTATION, f"no agreed context for {abstract_syntax}")

    # initiator -------------------------------------------------------------------

    def send_connect(
        self,
        user_data: Iterable[PDV],
        *,
        contexts: tuple[ContextDefinition, ...] = P1_CONTEXTS,
        called_selector: bytes | None = None,
        calling_selector: bytes | None = None,
    ) -> bytes:
        """The CP-type to put in the session CN user data."""
        self._expect(State.IDLE, "send CP")
        ids = [c.id for c in contexts]
        if len(set(ids)) != len(ids) or any(i < 1 or i % 2 == 0 for i in ids):
            raise LocalProtocolError(
                Layer.PRESENTATION, "the initiator's context ids must be distinct and odd"
            )
        cp = ConnectPPDU(
            calling_selector=calling_selector,
            called_selector=called_selector,
            contexts=contexts,
            user_data=tuple(user_data),
        )
        self._check_pdvs(cp.user_data, {c.id for c in contexts})
        self._proposed = contexts
        self.state = State.AWAIT_CPA
        return encode_connect(cp)

    def receive_accept(self, data: bytes) -> AcceptPPDU:
        """The CPA from the AC user data; the accepted contexts become agreed."""
        self._expect(State.AWAIT_CPA, "receive CPA")
        try:
            cpa = decode_accept(data)
        except PresentationProtocolError as exc:
            raise self._remote_error(exc) from None
        if len(cpa.results) != len(self._proposed):
            raise self._remote_error(
                PresentationProtocolError(
                    f"{len(cpa.results)} results for {len(self._proposed)} proposed contexts"
                )
            )
        for proposal, result in zip(self._proposed, cpa.results, strict=True):
            if result.result is Result.ACCEPTANCE:
                if result.transfer_syntax not in (None, *proposal.transfer_syntaxes):
                    raise self._remote_error(
                        PresentationProtocolError(f"context {proposal.id}: unproposed syntax")
                    )
                self.contexts[proposal.id] = proposal.abstract_syntax
        self.state = State.CONNECTED
        try:
            self._check_pdvs(cpa.user_data, set(self.contexts))
        except PresentationProtocolError as exc:
            raise self._remote_error(exc) from None
        return cpa

    # responder -------------------------------------------------------------------

    def receive_connect(self, data: bytes) -> ConnectPPDU:
        """The CP from the CN user data; decides which contexts to accept."""
        self._expect(State.IDLE, "receive CP")
        try:
            cp = decode_connect(data)
            ids = [c.id for c in cp.contexts]
            if len(set(ids)) != len(ids):
                raise PresentationProtocolError("repeated presentation context id")
            results = []
            for c in cp.contexts:
                if c.abstract_syntax not in self.supported:
                    reason = RejectReason.ABSTRACT_SYNTAX_NOT_SUPPORTED
                elif BER not in c.transfer_syntaxes:
                    reason = RejectReason.TRANSFER_SYNTAXES_NOT_SUPPORTED
                else:
                    results.append(ContextResult(result=Result.ACCEPTANCE, transfer_syntax=BER))
                    self.contexts[c.id] = c.abstract_syntax
                    continue
                results.append(
                    ContextResult(result=Result.PROVIDER_REJECTION, provider_reason=reason)
                )
            self._check_pdvs(cp.user_data, set(self.contexts))
        except PresentationProtocolError as exc:
            raise self._remote_error(exc) from None
        self._results = tuple(results)
        self.state = State.AWAIT_SEND_CPA
        return cp

    def send_accept(
        self, user_data: Iterable[PDV], *, responding_selector: bytes | None = None
    ) -> bytes:
        """The CPA for the AC user data, with the results `receive_connect` decided."""
        self._expect(State.AWAIT_SEND_CPA, "send CPA")
        pdvs = tuple(user_data)
        self._check_pdvs(pdvs, set(self.contexts), local=True)
        self.state = State.CONNECTED
        return encode_accept(
            AcceptPPDU(
                responding_selector=responding_selector, results=self._results, user_data=pdvs
            )
        )

    def send_refuse(
        self,
        user_data: Iterable[PDV] = (),
        *,
        reason: ProviderReason | None = None,
    ) -> bytes:
        """The CPR for the RF: the user (with user data) or the provider (a reason) refuses."""
        self._expect(State.AWAIT_SEND_CPA, "send CPR")
        pdvs = tuple(user_data)
        self._check_pdvs(pdvs, set(self.contexts), local=True)
        self.state = State.REFUSED
        return encode_refuse(
            RefusePPDU(results=self._results, provider_reason=reason, user_data=pdvs)
        )

    # data transfer ---------------------------------------------------------------

    def wrap(self, values: Mapping[int, bytes] | Iterable[tuple[int, bytes]]) -> bytes:
        """User-data (for DT, FN, DN) holding each (context id, encoded value)."""
        items = values.items() if isinstance(values, Mapping) else values
        pdvs = tuple(PDV(context_id=i, value=v) for i, v in items)
        if self.state is not State.CONNECTED:
            raise LocalProtocolError(Layer.PRESENTATION, f"no data in state {self.state.name}")
        self._check_pdvs(pdvs, set(self.contexts), local=True)
        return encode_user_data(pdvs)

    def wrap_one(self, context_id: int, value: bytes) -> bytes:
        """`wrap([(context_id, value)])`: the P-DATA around each RTTR."""
        if self.state is not State.CONNECTED:
            raise LocalProtocolError(Layer.PRESENTATION, f"no data in state {self.state.name}")
        if context_id not in self.contexts:
            self._check_pdvs(
                (PDV(context_id=context_id, value=value),), set(self.contexts), local=True
            )
        return encode_single_pdv(context_id, value)

    def unwrap(self, data: bytes) -> tuple[PDV, ...]:
        """The PDVs of received User-data (DT, FN, DN), each in an agreed context."""
        if self.state is not State.CONNECTED:
            raise LocalProtocolError(Layer.PRESENTATION, f"no data in state {self.state.name}")
        one = decode_single_pdv(data)  # an RTTR's P-DATA, read directly
        if one is not None and one.context_id in self.contexts:
            return (one,)
        try:
            pdvs = decode_user_data(data)
            self._check_pdvs(pdvs, set(self.contexts))
        except PresentationProtocolError as exc:
            raise self._remote_error(exc) from None
        return pdvs

    @staticmethod
    def _check_pdvs(pdvs: tuple[PDV, ...], agreed: set[int], *, local: bool = False) -> None:
        for pdv in pdvs:
            if pdv.context_id not in agreed:
                message = f"PDV in context {pdv.context_id}, not one of {sorted(agreed)}"
                if local:
                    raise LocalProtocolError(Layer.PRESENTATION, message)
                raise PresentationProtocolError(message, reason=AbortReason.INVALID_PARAMETER_VALUE)
