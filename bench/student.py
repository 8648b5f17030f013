"""A simulated student: one browser session of the app spoken over Streamlit's own protocol, at almost no cost.

It does what the browser does, and nothing it draws: fetches the page (its cookies: Streamlit's XSRF token and, behind
``spp-viz serve``, HAProxy's replica cookie, so that every later request reaches the same replica), opens the
websocket ``/_stcore/stream``, and sends ``BackMsg`` reruns with the widgets' states, as the browser does after a
click. The server answers with ``ForwardMsg``s: ``new_session`` when a run starts, the run's deltas (each element at
its place on the page), the ``navigation`` (the pages and their script hashes), ``script_finished`` when the run has
ended. A photo is uploaded as the browser does it: a ``file_urls_request`` on the websocket, the HTTP PUT of the file
to the URL the server gives, then a rerun whose uploader state names the file.

Every action returns a ``Page``: how long the run took, the text it shows, its figures and images, and whether it
raised (an exception element) or showed an error box. ``bench/locustfile.py`` drives many of these;
``bench/capacity.py`` times classroom scenarios with them.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

import requests
import websocket
from google.protobuf.message import Message
from requests.adapters import HTTPAdapter
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.Common_pb2 import FileURLs, FileURLsRequest, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState
from urllib3.util.retry import Retry

TEXT_ELEMENTS = {"markdown": "body", "text": "body", "alert": "body", "heading": "body", "code": "code_text"}
ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # Markdown's backslash escape of an ASCII punctuation mark
WIDGET_ID = re.compile(r"^\$\$ID-[0-9a-f]+-(.*)$")


class StudentError(RuntimeError):
    """The server did not answer as a browser session expects (no run finished in time, the connection closed)."""


@dataclass
class Page:
    """What one run showed: its elements by place (delta path), and how long it took from the click."""

    name: str
    seconds: float
    status: str  # "finished", or why not
    elements: dict[tuple[int, ...], Message] = field(default_factory=dict)

    def _main(self) -> list[tuple[tuple[int, ...], Message]]:
        return sorted((p, e) for p, e in self.elements.items() if p[:1] == (0,))

    @property
    def texts(self) -> list[str]:
        """The text of the main area's elements, in page order: markdown, captions, alerts, headings, metrics."""
        out = []
        for _, e in self._main():
            kind = e.WhichOneof("type")
            if kind in TEXT_ELEMENTS:
                out.append(getattr(getattr(e, kind), TEXT_ELEMENTS[kind]))
            elif kind == "metric":
                out += [e.metric.label, e.metric.body]
        return [t for t in out if t]

    @property
    def figures(self) -> int:
        return sum(e.WhichOneof("type") == "plotly_chart" for _, e in self._main())

    @property
    def images(self) -> int:
        return sum(len(e.imgs.imgs) for _, e in self._main() if e.WhichOneof("type") == "imgs")

    @property
    def exceptions(self) -> list[str]:
        """Tracebacks the run showed (anywhere on the page)."""
        return [f"{e.exception.type}: {e.exception.message}" for e in self.elements.values()
                if e.WhichOneof("type") == "exception"]  # fmt: skip

    @property
    def errors(self) -> list[str]:
        """Error boxes the run showed (anywhere on the page)."""
        return [e.alert.body for e in self.elements.values()
                if e.WhichOneof("type") == "alert" and e.alert.format == e.alert.ERROR]  # fmt: skip

    def shows(self, text: str) -> bool:
        """Whether the page shows ``text`` (Markdown's backslash escapes, which the app puts before a user's
        characters, read as the characters they stand for)."""
        return any(text in ESCAPED.sub(r"\1", t) for t in (self.texts + self.sidebar_texts))

    @property
    def sidebar_texts(self) -> list[str]:
        out = []
        for p, e in sorted(self.elements.items()):
            kind = e.WhichOneof("type")
            if p[:1] == (1,) and kind in TEXT_ELEMENTS:
                out.append(getattr(getattr(e, kind), TEXT_ELEMENTS[kind]))
        return out


class Student:
    """One browser session over Streamlit's protocol. Not thread-safe: one student, one thread (or greenlet).

    Args:
        url: the app's address, "http://host:port" (behind HAProxy, the proxy's).
        timeout: seconds a run may take before ``StudentError``.
    """

    def __init__(self, url: str, timeout: float = 600, locale: str = "en-US") -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.locale = locale
        self.http = requests.Session()
        # As a browser does: a request sent on a kept-alive connection the proxy had just closed is sent again.
        retry = Retry(total=3, connect=3, read=2, status=0, allowed_methods=None, backoff_factor=0.2)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.ws: websocket.WebSocket | None = None
        self.session_id = ""
        self.pages: dict[str, str] = {}  # page name -> script hash (from the navigation message)
        self.page_hash = ""  # the page shown
        self.query = ""  # the page address's query, as the app last set it (the browser sends it back)
        self.last: Page | None = None  # the last run's page
        self.widgets: dict[str, WidgetState] = {}  # widget id -> the state this student gave it
        self.widget_ids: dict[str, str] = {}  # a widget's key (the end of its id) -> its id, as the runs show them
        self.runs = 0

    # ------------------------------------------------------------------ the browser's actions

    def open(self, path: str = "/") -> Page:
        """Load the app as a browser's first visit does (its page, the health check that sets the XSRF cookie, the
        host's settings), connect, and run the page."""
        for part in (path, "/_stcore/health", "/_stcore/host-config"):  # as the browser: health sets the XSRF cookie
            self._http("GET", part, timeout=60).raise_for_status()
        netloc = urlparse(self.url).netloc
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        xsrf = self.http.cookies.get("_streamlit_xsrf", "")
        self.ws = websocket.create_connection(
            f"ws://{netloc}/_stcore/stream", timeout=self.timeout, subprotocols=["streamlit", xsrf or "_"],
            cookie=cookies or None, origin=self.url,
        )  # fmt: skip
        return self._run("Home", self._client_state())

    def page(self, name: str) -> Page:
        """Follow the sidebar's link to a page (by its title, as the navigation names it: "Feature maps")."""
        if name not in self.pages:
            raise StudentError(f"no page named {name!r}: the app has {sorted(self.pages)}")
        self.page_hash = self.pages[name]
        return self._run(name, self._client_state())

    def set(self, key: str, value: str | bool | float | int | list[str]) -> Page:
        """Set the widget of ``key`` (a select box's option, a radio's, a tab's label; a checkbox; a slider's number;
        a text) and rerun, as a browser does after the change."""
        state = WidgetState(id=self._widget_id(key))
        if isinstance(value, bool):
            state.bool_value = value
        elif isinstance(value, str):
            state.string_value = value
        elif isinstance(value, (int, float)):
            state.double_array_value.data.append(float(value))
        else:
            state.string_array_value.data.extend(value)
        self.widgets[state.id] = state
        return self._run(f"set {key}", self._client_state())

    def click(self, key: str) -> Page:
        """Click the button of ``key``."""
        state = WidgetState(id=self._widget_id(key), trigger_value=True)
        return self._run(f"click {key}", self._client_state(extra=[state]))

    def upload(self, data: bytes, name: str, key: str = "upload") -> Page:
        """Upload a file into the uploader of ``key`` (the sidebar's photo by default) as the browser does: ask for
        its URL on the websocket, PUT the file there, then rerun with the uploader naming it."""
        widget = self._widget_id(key)
        request_id = str(uuid.uuid4())
        self._send(BackMsg(file_urls_request=FileURLsRequest(request_id=request_id, file_names=[name],
                                                             session_id=self.session_id)))  # fmt: skip
        urls = self._receive_until(lambda m: m.WhichOneof("type") == "file_urls_response"
                                   and m.file_urls_response.response_id == request_id)  # fmt: skip
        if urls.file_urls_response.error_msg:
            raise StudentError(f"the server refused the upload of {name}: {urls.file_urls_response.error_msg}")
        urls = urls.file_urls_response.file_urls[0]
        xsrf = self.http.cookies.get("_streamlit_xsrf", "")
        response = self._http("PUT", urls.upload_url, files={"file": (name, data)},
                              headers={"X-Xsrftoken": xsrf} if xsrf else {}, timeout=self.timeout)  # fmt: skip
        if response.status_code != 204:
            raise StudentError(f"the upload of {name} failed: HTTP {response.status_code} {response.text[:200]}")
        state = WidgetState(id=widget)
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id)
        info.file_urls.CopyFrom(FileURLs(file_id=urls.file_id, upload_url=urls.upload_url, delete_url=urls.delete_url))
        state.file_uploader_state_value.uploaded_file_info.append(info)
        self.widgets[widget] = state
        return self._run(f"upload {name}", self._client_state())

    def options(self, key: str) -> list[str]:
        """The options of the select box or radio of ``key`` on the last page, as the student reads them."""
        wanted = self._widget_id(key)
        for e in (self.last.elements.values() if self.last else []):
            kind = e.WhichOneof("type")
            if kind in ("selectbox", "radio", "multiselect") and getattr(e, kind).id == wanted:
                return list(getattr(e, kind).options)
        raise StudentError(f"no select box or radio of key {key!r} on the last page")

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            finally:
                self.ws = None
        self.http.close()

    def __enter__(self) -> Student:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def replica(self) -> str | None:
        """The replica HAProxy keeps this student on (its cookie), or None without a proxy."""
        return self.http.cookies.get("SPPVIZ_REPLICA")

    # ------------------------------------------------------------------ the protocol

    def _http(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self.http.request(method, self.url + path, **kwargs)
        except requests.RequestException as e:
            raise StudentError(f"{method} {path} failed: {type(e).__name__}: {e}") from e

    def _client_state(self, extra: list[WidgetState] = ()) -> ClientState:
        state = ClientState(page_script_hash=self.page_hash, query_string=self.query, context_info=ContextInfo(
            timezone="UTC", timezone_offset=0, locale=self.locale, url=self.url + "/", is_embedded=False,
            color_scheme="light"))  # fmt: skip
        state.widget_states.widgets.extend([*self.widgets.values(), *extra])
        return state

    def _widget_id(self, key: str) -> str:
        if key not in self.widget_ids:
            raise StudentError(f"no widget of key {key!r} on the page; its widgets: {sorted(self.widget_ids)}")
        return self.widget_ids[key]

    def _send(self, msg: BackMsg) -> None:
        if self.ws is None:
            raise StudentError("not connected: call open() first")
        self.ws.send_binary(msg.SerializeToString())

    def _receive(self) -> ForwardMsg:
        try:
            frame = self.ws.recv()
        except (websocket.WebSocketException, OSError) as e:
            raise StudentError(f"the connection failed: {type(e).__name__}: {e}") from e
        if not isinstance(frame, bytes):
            raise StudentError(f"a text frame from the server: {frame[:200]!r}")
        return ForwardMsg.FromString(frame)

    def _receive_until(self, done) -> ForwardMsg:  # noqa: ANN001
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = self._receive()
            self._note(msg)
            if done(msg):
                return msg
        raise StudentError(f"no answer within {self.timeout:.0f} s")

    def _note(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.session_id = msg.new_session.initialize.session_id or self.session_id
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "navigation":
            self.pages = {p.page_name: p.page_script_hash for p in msg.navigation.app_pages}
            if not self.page_hash:
                self.page_hash = msg.navigation.page_script_hash

    def _run(self, name: str, state: ClientState) -> Page:
        """Send a rerun and read until its run has finished (a run that ends early for another rerun, such as the
        app's own leaving of Streamlit's legacy pages mode, is followed to the run that finishes)."""
        start = time.monotonic()
        self._send(BackMsg(rerun_script=state))
        page = Page(name, 0.0, "running")
        while True:
            msg = self._receive_until(lambda m: m.WhichOneof("type") in ("delta", "new_session", "script_finished"))
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                page.elements = {}  # a new run draws the page afresh
            elif kind == "delta":
                self._delta(page, msg)
            elif msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                page.status = "finished" if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY else "error"
                break
        page.seconds = time.monotonic() - start
        self.runs += 1
        self.last = page
        return page

    def _delta(self, page: Page, msg: ForwardMsg) -> None:
        path = tuple(msg.metadata.delta_path)
        delta = msg.delta
        which = delta.WhichOneof("type")
        if which == "new_element":
            page.elements[path] = delta.new_element
            self._widgets_in(delta.new_element)
        elif which == "add_block":
            self._widgets_in(delta.add_block)

    def _widgets_in(self, message: Message) -> None:
        """Remember every widget id a delta carries (elements and blocks alike: tabs are blocks), by its key."""
        for fd, value in message.ListFields():
            if fd.name == "id" and isinstance(value, str) and (m := WIDGET_ID.match(value)):
                self.widget_ids[m.group(1)] = value
            elif fd.type == fd.TYPE_MESSAGE:
                for item in value if fd.is_repeated else [value]:
                    if isinstance(item, Message):
                        self._widgets_in(item)

