"""The sidebar's "any timm or torchvision CNN" box: a name (typed, or picked from every name the two libraries list,
by family) and its weights (random, the library's pretrained ones after a download the student starts, or a state
dict file). A name the app cannot split says why before any weights are read (``spp_viz.external.check_name``)."""

from __future__ import annotations

import streamlit as st

from spp_viz import catalog
from spp_viz.budgets import TooLarge, check_weights_file
from spp_viz.external import PRETRAINED, SUGGESTIONS, check_name, network_bytes
from spp_viz.external import pretrained_source as _pretrained_source
from spp_viz.i18n import _, lazy_gettext, number
from spp_viz.pretrained import Source
from spp_viz.settings import weights_max_mb
from spp_viz.weights import UploadedWeights, WeightsError

from .builds import BuildStopped, download, download_stop_key
from .jobs import restart
from .session import refuse_upload, refused, remember_weights, upload_key
from .text import md

WEIGHT_KINDS = {
    "random": lazy_gettext("random (untrained)"),
    "pretrained": lazy_gettext("the library's pretrained"),
    "file": lazy_gettext("a file of mine"),
}
OFFLINE_PRETRAINED = "timm:tf_efficientnet_lite1"  # its weights come in a pip package: no download


@st.cache_data(max_entries=64, show_spinner=False)
def pretrained_source(name: str) -> Source:
    """external.pretrained_source, cached (a timm network is built to count its parameters)."""
    return _pretrained_source(name)


@st.cache_data(show_spinner=False)
def listed_names() -> list[str]:
    """The suggestions first, then every name both libraries list, by library and family."""
    return list(dict.fromkeys([*SUGGESTIONS, *catalog.names()]))


@st.cache_data(max_entries=256, show_spinner=False)
def described(name: str) -> str:
    """catalog.entry's words: family, parameters, where pretrained weights would come from (meta device, no weights)."""
    return catalog.entry(name).describe()


def _family(name: str) -> str:
    library, _colon, arch = name.partition(":")
    return f"{name}  ({catalog.families(library).get(arch, '?')})"


def _take_suggestion() -> None:
    st.session_state["external_name"] = st.session_state["external_pick"] or ""


def external_box() -> tuple[str, str | None] | None:
    """(name, weights) of the network asked for, or None while a name, a file or a download is still to come."""
    with st.spinner(_("Reading the two libraries' lists ...")):
        names = listed_names()
    st.selectbox(
        _("Every name the two libraries list ({count})").format(count=number(len(names))),
        names,
        index=None,
        key="external_pick",
        format_func=_family,
        placeholder=_("type to search: resnet, densenet, mobilenet ..."),
        on_change=_take_suggestion,
        help=_(
            "Suggestions first, then torchvision's and timm's classification models by family (the library's "
            "module). Picking one only fills the box below; nothing is built until its weights are chosen."
        ),
    )
    name = st.text_input(
        _("timm or torchvision CNN"),
        key="external_name",
        placeholder=_("timm:NAME or torchvision:NAME"),
        help=_(
            "Any CNN of the two libraries, e.g. timm:resnet18 or torchvision:mobilenet_v2. Networks whose layers "
            "attend over positions (vision transformers, and hybrids such as MobileViT) have no conv5 map and are "
            "refused with the layer that attends. {offline}'s pretrained weights are a pip package (offline)."
        ).format(offline=OFFLINE_PRETRAINED),
    )
    kind = st.radio(
        _("Weights"),
        list(WEIGHT_KINDS),
        format_func={k: str(v) for k, v in WEIGHT_KINDS.items()}.get,
        key="external_weights",
    )
    if not name.strip():
        st.caption(_("Pick or type a network's name."))
        return None
    name = name.strip()
    try:
        check_name(name)
    except ValueError as e:
        st.error(_("**{model}** cannot be used: {why}").format(model=md(name), why=md(e)))
        return None
    st.caption(f"{md(name)}: {described(name)}.")
    if kind == "random":
        st.caption(_("Random weights: every page marks this network untrained."))
        return name, None
    if kind == "file":
        return _file(name)
    return _pretrained(name)


def _file(name: str) -> tuple[str, str] | None:
    base = f"weights_upload_{name}"
    up = st.file_uploader(
        _("State dict of {model} (.safetensors, .pth)").format(model=name),
        type=["safetensors", "pth", "pt"],
        key=upload_key(base),
        max_upload_size=weights_max_mb(),
        help=_(
            "At most {mb} MB. Keys as the library names them; read with weights_only=True (nothing is unpickled). It "
            "stays in your session."
        ).format(mb=weights_max_mb()),
    )
    if up is None:
        if (why := refused(base)) is not None:
            st.error(_("**That file was not read:** {why}.").format(why=md(why)))
        st.caption(_("Upload the file to use this network."))
        return None
    try:  # before the file is read or kept: a huge file leaves the server's memory at once
        check_weights_file(name, up.size, network_bytes(name))
    except TooLarge as e:
        refuse_upload(base, up, str(e))
        st.rerun()
    refused(base, taken=True)
    return name, remember_weights(UploadedWeights(up.name, up.getvalue()))


def _pretrained(name: str) -> tuple[str, str] | None:
    try:
        where = pretrained_source(name)
    except (WeightsError, ValueError) as e:
        st.error(_("**{model}** has no pretrained weights to fetch: {why}").format(model=md(name), why=md(e)))
        return None
    st.caption(_("Pretrained weights: {where}.").format(where=where.describe()))
    if where.kind != "download":
        return name, PRETRAINED
    mb = f"{where.size / 1e6:.0f}" if where.size is not None else ""
    about = _(" (about {mb} MB)").format(mb=mb) if where.estimated else _(" ({mb} MB)").format(mb=mb)
    size = "" if where.size is None else about
    failed: dict[str, str] = st.session_state.setdefault("download_failed", {})
    # A checkbox, not a button: a button's click is lost when the run that sees it reruns (the first run of a
    # session leaves Streamlit's legacy pages mode by a rerun), and a failed download must not retry every run.
    if not st.checkbox(_("Download them") + size, key=f"download_{name}"):
        failed.pop(name, None)
        return None
    retry = _("**{model}**: {why} Untick the box and tick it again to retry.")
    if name in failed:
        st.error(retry.format(model=md(name), why=md(failed[name])))
        return None
    try:
        download(name, size)
    except BuildStopped as e:
        st.info(_("**{model}** was stopped.").format(model=md(e)))
        st.button(_("Download them again"), key="download_again", on_click=restart, args=(download_stop_key(name),))
        return None
    except (WeightsError, ValueError) as e:
        failed[name] = str(e)
        st.error(retry.format(model=md(name), why=md(e)))
        return None
    finally:
        pretrained_source.clear()  # it is cached now, or still to download
    return name, PRETRAINED
