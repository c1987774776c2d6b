"""Reading the active layer and selection out of Krita, and writing result layers back in one step.

A paint layer is edited as its pixels; a group as its merged picture (what it shows), with the results
added above the group, as the GIMP plug-in does (README, "In the editors").
Krita's Python API: ``node.pixelData`` gives bytes in the node's colour space (8-bit RGBA = BGRA);
other spaces are converted to 8-bit sRGB by Krita itself (LCMS) in a throw-away document, so the
user's document and its undo history are never touched until the results go in.
"""

from typing import List, Optional, Tuple

from krita import Krita

from sdedit_client import SDEditError
from sdedit_client.mask import cut_to_selection, mask_needed

from .pixels import SRGB8, Rect, intersect, is_native_srgb8, node_kind_words

ColorSpace = Tuple[str, str, str]


class Source:
    """The pixels of one edit: the layer's rectangle, its 8-bit sRGB BGRA bytes and the mask (None = all)."""

    def __init__(self, document, node, rect: Rect, bgra: bytes, mask: Optional[bytes], space: ColorSpace):
        self.document = document
        self.node = node
        self.rect = rect
        self.bgra = bgra
        self.mask = mask
        self.space = space
        self.edit_mask = mask  # the mask the server edited with (the selection grown), once a result came

    def with_edit_mask(self, edit_mask: Optional[bytes]) -> "Source":
        """The same pixels, with the mask a result was edited with (each result keeps its own)."""
        copy = Source(self.document, self.node, self.rect, self.bgra, self.mask, self.space)
        copy.edit_mask = edit_mask if edit_mask is not None else self.mask
        return copy

    @property
    def size(self) -> Tuple[int, int]:
        return self.rect[2], self.rect[3]

    def describe(self) -> str:
        """The source in words for messages: 'The layer “Strokes”' or 'The group “Sky”'."""
        try:
            kind = "group" if self.node.type() == "grouplayer" else "layer"
            return "The %s \u201c%s\u201d" % (kind, self.node.name())
        except Exception:  # a deleted node: the message still reads
            return "The layer"


#: The node types SDEdit edits: paint layers as their pixels, groups as their merged picture.
EDITABLE_TYPES = ("paintlayer", "grouplayer")


def active_paint_layer(document):
    """The active node when SDEdit can edit it (a paint layer or a group); else a one-sentence SDEditError."""
    if document is None:
        raise SDEditError("Open or create an image first, then run Filters → SDEdit… on a paint layer.")
    return require_paint_layer(document.activeNode())


def require_paint_layer(node):
    """``node`` when it is a paint layer or a group; else a one-sentence SDEditError naming what it is."""
    if node is None or node.type() not in EDITABLE_TYPES:
        raise SDEditError("SDEdit works on a paint layer or a group, but the active layer is %s: select a paint "
                          "layer or a group in the Layers docker." % node_kind_words(node.type() if node else None))
    return node


def read_source(document, node) -> Source:
    """The layer's pixels (a group's merged picture) inside the canvas as 8-bit sRGB BGRA, plus the selection
    over the same area."""
    bounds = node.bounds()
    rect = intersect((bounds.x(), bounds.y(), bounds.width(), bounds.height()),
                     (0, 0, document.width(), document.height()))
    if rect is None:
        raise SDEditError("The active layer has nothing on the canvas: paint some strokes on it first.")
    space = (node.colorModel(), node.colorDepth(), node.colorProfile())
    if node.type() == "grouplayer":
        document.waitForDone()  # the merged picture of a group is computed in the background
        raw = bytes(node.projectionPixelData(*rect))
    else:
        raw = bytes(node.pixelData(*rect))
    bgra = raw if is_native_srgb8(*space) else convert_pixels(raw, rect[2], rect[3], space, SRGB8)
    selection = document.selection()
    mask = None
    if selection is not None:
        mask = bytes(selection.pixelData(*rect))
        if len(mask) != rect[2] * rect[3]:
            raise SDEditError("Krita returned a selection of an unexpected size: try selecting the area again.")
    return Source(document, node, rect, bgra, mask, space)


def convert_pixels(raw: bytes, width: int, height: int, src: ColorSpace, dst: ColorSpace) -> bytes:
    """Convert pixel bytes between colour spaces with Krita's own colour management, off-document."""
    app = Krita.instance()
    temp = app.createDocument(width, height, "sdedit-conversion", src[0], src[1], src[2], 72.0)
    if temp is None:
        raise SDEditError("SDEdit cannot read %s %s layers: convert the image to 8-bit RGB/Alpha with "
                          "Image → Convert Image Color Space…" % (src[0], src[1]))
    try:
        layer = temp.rootNode().childNodes()[0]
        layer.setPixelData(raw, 0, 0, width, height)
        if not temp.setColorSpace(dst[0], dst[1], dst[2]):
            raise SDEditError("Krita could not convert this %s %s layer to %s %s: convert the image with "
                              "Image → Convert Image Color Space…" % (src[0], src[1], dst[0], dst[1]))
        temp.waitForDone()
        layer = temp.rootNode().childNodes()[0]
        out = bytes(layer.pixelData(0, 0, width, height))
    finally:
        temp.close()
    return out


def selection_only(source: Source, result_layer: str) -> bool:
    """Whether result layers hold only the edited selection: a partial selection and not "full" copies."""
    return result_layer != "full" and source.mask is not None and mask_needed(source.mask, *source.size)


def insert_results(source: Source, images_bgra: List[bytes], names: List[str], group: str,
                   only_selection: bool = False) -> List[str]:
    """Add the results above the source layer in one step (one undo step); returns the new layer names.

    Every layer is fully written before anything is added to the document, so a failure never leaves a
    half-written layer. One result becomes one paint layer; several go into one group, because Krita's
    scripting API records each added node as its own undo step. ``only_selection``: each layer holds the
    edited selection only (transparent outside, the selection's soft edge as alpha).
    """
    document, node = source.document, source.node
    width, height = source.size
    nodes = []
    for bgra, name in zip(images_bgra, names):
        if len(bgra) != width * height * 4:
            raise SDEditError("The server returned a result of the wrong size: update the SDEdit server.")
        if only_selection:
            bgra = cut_to_selection(bgra, source.edit_mask, source.bgra)
        raw = bgra if is_native_srgb8(*source.space) else convert_pixels(bgra, width, height, SRGB8, source.space)
        layer = document.createNode(name, "paintlayer")
        if (layer.colorModel(), layer.colorDepth(), layer.colorProfile()) != source.space:
            layer.setColorSpace(*source.space)
        layer.setPixelData(raw, *source.rect)
        nodes.append(layer)
    parent = node.parentNode() or document.rootNode()
    above = node if node.parentNode() is not None else None
    if len(nodes) == 1:
        top = nodes[0]
    else:
        top = document.createNode(group, "grouplayer")
        previous = None
        for layer in reversed(nodes):  # #1 ends on top, the one you see
            top.addChildNode(layer, previous)
            previous = layer
    parent.addChildNode(top, above)
    # The new layer is not made active: in Krita 5.1.5 Document.setActiveNode on a node added from Python
    # trips a SAFE ASSERT in KisNodeManager (no shape for it yet), even when deferred.
    document.refreshProjection()
    return [layer.name() for layer in nodes]

