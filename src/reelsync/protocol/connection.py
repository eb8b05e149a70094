"""One stream of a data-plane session, sans-I/O: bytes in, events out; events in, bytes out.

State machine of a stream (each side runs one :class:`Connection` per TCP stream)::

    HANDSHAKE --Hello/Welcome--> OPEN --Bye or Failure (sent or received)--> CLOSED
              --Failure-------------------------------------------------->  CLOSED

Rules:
1. The dialer sends Hello first; the listener answers Welcome, whose version must be one the Hello
   offered (the listener picks the highest common one, see :func:`choose_version`), or Failure.
   Nothing else may cross a stream before its handshake.
2. Stream 0 is the primary stream of a session: only it carries Want, Manifest, Plan and Bye.
   Want is sent by a pulling (receiving) dialer, once, before any Manifest (version 3: any number
   of times); every Plan answers one Manifest, in order. Data and results (Chunk, Batch, FileEnd,
   FileAbort, Ack, Nack, FileDone) may use any stream of the session.
3. Direction follows the transfer role: the sending side sends Manifest, Chunk, Batch, FileEnd,
   FileAbort and (versions 1-2) Bye; the receiving side sends Want, Plan, Ack, Nack and FileDone.
   Version 3: Bye comes from the dialer, whatever its role (it ends a session kept open for more
   work). Either sends Failure. Breaking a rule locally raises ProtocolError (``remote=False``); a
   peer breaking one raises ProtocolError (``remote=True``) from :meth:`Connection.next_event`.
4. Folder entries in a Manifest (``parent``/``files``) need version 2; a ticket on a Want or a
   Manifest needs version 3, and only the dialer sends one. Runs in a Manifest go to a peer of
   version 2-3 as entries (the codec expands them); runs in a Plan need version 4, and each
   answers a run of the Manifest it answers.
5. Sending on a stream the *peer* closed (its end of stream or Bye) is no rule broken by this
   side but a peer gone: it raises ConnectionLostError (retryable); after the peer's Failure, the
   error that Failure carries. Only a stream this side closed raises ProtocolError.
"""

from __future__ import annotations

from enum import Enum

from reelsync.errors import ConnectionLostError, ProtocolError, ReelsyncError, error_from_code
from reelsync.protocol.codec import (
    CHUNK_FIELDS as _CHUNK_FIELDS,
)
from reelsync.protocol.codec import (
    HEADER,
    MAX_BODY,
    BatchFrame,
    FrameType,
    decode_body,
    encode_event,
)
from reelsync.protocol.events import (
    Ack,
    Batch,
    Bye,
    Chunk,
    ConnectionClosed,
    Event,
    Failure,
    FileAbort,
    FileDone,
    FileEnd,
    Hello,
    Manifest,
    Nack,
    Plan,
    Role,
    Want,
    Welcome,
)

__all__ = [
    "NEED_DATA",
    "SUPPORTED_VERSIONS",
    "Connection",
    "NeedData",
    "Side",
    "State",
    "choose_version",
]

#: 2: folders in MANIFEST; 3: open sessions; 4: runs (a folder's files in columns), binary PLAN
SUPPORTED_VERSIONS: tuple[int, ...] = (1, 2, 3, 4)
_CHUNK_START = HEADER.size + _CHUNK_FIELDS.size

_SENDER_EVENTS = (Manifest, Chunk, Batch, FileEnd, FileAbort, Bye)
_SENDER_EVENTS_V3 = (Manifest, Chunk, Batch, FileEnd, FileAbort)
_RECEIVER_EVENTS = (Want, Plan, Ack, Nack, FileDone)
_PRIMARY_ONLY = (Want, Manifest, Plan, Bye)


class Side(Enum):
    DIALER = "dialer"
    LISTENER = "listener"


class State(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class NeedData:
    """Returned by :meth:`Connection.next_event` when a whole frame has not arrived yet."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


def choose_version(offered: tuple[int, ...], supported: tuple[int, ...]) -> int | None:
    """The highest version both sides speak, or None."""
    common = set(offered) & set(supported)
    return max(common) if common else None


def _other(role: Role) -> Role:
    return "receive" if role == "send" else "send"


class Connection:
    """One stream. ``side`` says who dialled; the transfer role is learnt from the Hello."""

    def __init__(self, side: Side, *, versions: tuple[int, ...] = SUPPORTED_VERSIONS) -> None:
        self.side = side
        self.versions = versions
        self.state = State.HANDSHAKE
        self.version: int | None = None
        self.session: str | None = None
        self.stream: int | None = None
        self.streams: int | None = None
        self.role: Role | None = None  # our transfer role
        self.hello: Hello | None = None
        self._buf = bytearray()
        self._eof = False
        self._hello_sent = False
        self._want_seen = False
        self._manifests = 0  # manifests sent (sending side) or received (receiving side)
        self._plans = 0
        self._peer_closed: Event | None = None  # what the peer closed the stream with

    # -- sending ---------------------------------------------------------------------------------
    def send(self, event: Event) -> list[bytes]:
        """The bytes to write for ``event``, after checking this side may send it now."""
        self._check(event, local=True)
        data = encode_event(event, self.version or 1)
        self._advance(event, local=True)
        return data

    def send_batch(self, batch: BatchFrame) -> memoryview:
        """The bytes of a BATCH frame laid out in place (:class:`BatchFrame`), after the same
        checks as :meth:`send` of a :class:`Batch`."""
        event = Batch(())
        self._check(event, local=True)
        data = batch.frame()
        self._advance(event, local=True)
        return data

    # -- receiving -------------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the stream; an empty ``data`` means the peer closed it."""
        if not data:
            self._eof = True
            return
        self._buf += data

    def bytes_wanted(self) -> int:
        """How many more bytes complete the frame being received (0 when not inside one); lets
        an I/O layer read a large body in one go instead of record by record."""
        if len(self._buf) < HEADER.size:
            return 0
        length: int = HEADER.unpack_from(self._buf, 0)[0]
        return max(0, HEADER.size + min(length, MAX_BODY) - len(self._buf))

    def pending_chunk(self) -> tuple[int, int] | None:
        """When the frame being received is a CHUNK whose fixed fields have arrived: (payload
        bytes already buffered, payload bytes still missing). Lets an I/O layer read the rest of
        a large payload straight into its final buffer (:meth:`receive_chunk_payload`)."""
        buf = self._buf
        if len(buf) < _CHUNK_START:
            return None
        length, kind = HEADER.unpack_from(buf, 0)
        if kind != FrameType.CHUNK or length > MAX_BODY or len(buf) >= HEADER.size + length:
            return None
        have = len(buf) - _CHUNK_START
        return have, length - (_CHUNK_START - HEADER.size) - have

    def receive_chunk_payload(self, payload: bytearray | memoryview, offset: int) -> Chunk:
        """Complete the pending CHUNK: ``payload[offset:]`` holds the missing bytes the caller
        read; the buffered ones are copied into ``payload[:offset]``. ``payload`` (a bytearray,
        or a writable memoryview of a buffer the caller reuses once the event is consumed)
        becomes the event's data without another copy. The event passes the same checks as
        any other."""
        pending = self.pending_chunk()
        if pending is None or pending[0] != offset or len(payload) != offset + pending[1]:
            raise ProtocolError("receive_chunk_payload without a matching pending CHUNK")
        payload[:offset] = self._buf[_CHUNK_START:]
        file_id, index, checksum = _CHUNK_FIELDS.unpack_from(self._buf, HEADER.size)
        self._buf.clear()
        event = Chunk(file_id, index, checksum, payload)  # type: ignore[arg-type]
        self._check(event, local=False)
        self._advance(event, local=False)
        return event

    def pending_frame(self) -> tuple[int, int] | None:
        """When a frame's header has arrived but not all of its body: (body bytes buffered,
        body bytes still missing). Lets an I/O layer read the rest of a large frame straight
        into a buffer of its own (:meth:`receive_frame_body`)."""
        buf = self._buf
        if len(buf) < HEADER.size:
            return None
        length: int = HEADER.unpack_from(buf, 0)[0]
        have = len(buf) - HEADER.size
        if length > MAX_BODY or have >= length:
            return None
        return have, length - have

    def receive_frame_body(
        self, body: bytearray | memoryview, offset: int, *, copy: bool = True
    ) -> Event:
        """Complete the pending frame: ``body[offset:]`` holds the missing bytes the caller
        read; the buffered ones are copied into ``body[:offset]``, and the frame is decoded from
        ``body`` (with ``copy=False``, chunk and batch data stay views of it: the caller must
        consume the event before it reuses the buffer). The event passes the usual checks."""
        pending = self.pending_frame()
        if pending is None or pending[0] != offset or len(body) != offset + pending[1]:
            raise ProtocolError("receive_frame_body without a matching pending frame")
        body[:offset] = self._buf[HEADER.size :]
        kind: int = HEADER.unpack_from(self._buf, 0)[1]
        self._buf.clear()
        event = decode_body(kind, memoryview(body), copy=copy, version=self.version or 1)
        self._check(event, local=False)
        self._advance(event, local=False)
        return event

    def next_event(self) -> Event | NeedData:
        """The next whole event received, or :data:`NEED_DATA`."""
        buf = self._buf
        if len(buf) < HEADER.size:
            return self._at_eof()
        length, kind = HEADER.unpack_from(buf, 0)
        if length > MAX_BODY:
            raise ProtocolError(f"frame of {length} bytes exceeds the limit", remote=True)
        end = HEADER.size + length
        if len(buf) < end:
            return self._at_eof()
        with memoryview(buf) as view:
            event = decode_body(kind, view[HEADER.size : end], version=self.version or 1)
        del buf[:end]
        self._check(event, local=False)
        self._advance(event, local=False)
        return event

    def _at_eof(self) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        if self._buf:
            raise ProtocolError("the peer closed the stream in the middle of a frame", remote=True)
        event = ConnectionClosed()
        if self.state is not State.CLOSED:  # the peer closed first
            self._peer_closed = event
        self.state = State.CLOSED
        return event

    # -- rules -----------------------------------------------------------------------------------
    def _fail(self, message: str, *, local: bool) -> ProtocolError:
        who = "" if local else "the peer sent "
        return ProtocolError(f"{who}{message}", remote=not local)

    def _closed_error(self, name: str, *, local: bool) -> ReelsyncError:
        closed = self._peer_closed
        if not local or closed is None:
            return self._fail(f"{name} on a closed stream", local=local)
        if isinstance(closed, Failure):  # the peer refused: its error, not a retry
            return error_from_code(closed.code, closed.message)
        return ConnectionLostError(f"{name} on a stream the peer closed")

    def _check(self, event: Event, *, local: bool) -> None:
        name = type(event).__name__
        if self.state is State.CLOSED:
            raise self._closed_error(name, local=local)
        if isinstance(event, Failure):
            return
        dialer_sends = local == (self.side is Side.DIALER)
        if self.state is State.HANDSHAKE:
            if isinstance(event, Hello) and dialer_sends and not self._hello_sent:
                if event.stream < 0 or event.streams < 1 or event.stream >= event.streams:
                    raise self._fail(
                        f"Hello for stream {event.stream} of {event.streams}", local=local
                    )
                return
            if isinstance(event, Welcome) and not dialer_sends and self.hello is not None:
                if event.version not in self.hello.versions or event.version not in self.versions:
                    raise self._fail(f"Welcome with unoffered version {event.version}", local=local)
                return
            raise self._fail(f"{name} before the handshake completed", local=local)
        if isinstance(event, Hello | Welcome):
            raise self._fail(f"a second {name}", local=local)
        # OPEN: direction by transfer role
        v3 = (self.version or 1) >= 3
        if isinstance(event, _PRIMARY_ONLY) and self.stream != 0:
            raise self._fail(f"{name} on secondary stream {self.stream}", local=local)
        if v3 and isinstance(event, Bye):
            if not dialer_sends:
                raise self._fail("Bye from the listener of a version 3 session", local=local)
            return
        sender = self.role == "send" if local else self.role == "receive"
        allowed = (_SENDER_EVENTS_V3 if v3 else _SENDER_EVENTS) if sender else _RECEIVER_EVENTS
        if not isinstance(event, allowed):
            side = "sending" if sender else "receiving"
            raise self._fail(f"{name} from the {side} side", local=local)
        if isinstance(event, Want) and (
            not dialer_sends or (not v3 and (self._want_seen or self._manifests))
        ):
            raise self._fail("Want from a listener, twice, or after a Manifest", local=local)
        if (
            isinstance(event, Want | Manifest)
            and event.ticket is not None
            and not (v3 and dialer_sends)
        ):
            raise self._fail(
                "a ticket on a Want or Manifest needs version 3 and the dialer", local=local
            )
        if isinstance(event, Plan) and self._plans >= self._manifests:
            raise self._fail("a Plan that answers no Manifest", local=local)
        if (
            isinstance(event, Manifest)
            and (self.version or 1) < 2
            and (
                event.runs or any(m.parent is not None or m.files is not None for m in event.files)
            )
        ):
            raise self._fail("a folder in a version 1 Manifest", local=local)
        if isinstance(event, Plan) and event.runs and (self.version or 1) < 4:
            raise self._fail("runs in a Plan below version 4", local=local)

    def _advance(self, event: Event, *, local: bool) -> None:
        if isinstance(event, Failure | Bye):
            self.state = State.CLOSED
            if not local and self._peer_closed is None:
                self._peer_closed = event
        elif isinstance(event, Hello):
            self._hello_sent = True
            self.hello = event
            self.session, self.stream, self.streams = event.session, event.stream, event.streams
            self.role = event.role if local else _other(event.role)
        elif isinstance(event, Welcome):
            self.version = event.version
            self.state = State.OPEN
        elif isinstance(event, Want):
            self._want_seen = True
        elif isinstance(event, Manifest):
            self._manifests += 1
        elif isinstance(event, Plan):
            self._plans += 1
