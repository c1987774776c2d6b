"""Test harness plugin: drives the SDEdit plugin inside a real Krita, writes a JSON report, quits.

Configured by the JSON file named in $SDEDIT_E2E_CONFIG ({"server_url", "down_url", "out_dir"}).
Each case makes its own document, runs SDEdit, and dumps the pixels it needs as PNGs; the pytest side
(tests/e2e/krita/test_krita_e2e.py) makes every judgement from those files.
"""

import json
import os
import sys
import time
import traceback

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QEventLoop, QPoint, QTimer
from PyQt5.QtWidgets import QApplication, QMessageBox, QPushButton

CONFIG = json.load(open(os.environ["SDEDIT_E2E_CONFIG"])) if os.environ.get("SDEDIT_E2E_CONFIG") else None
REPORT = {"started": time.time(), "cases": {}, "steps": []}


def log(message):
    REPORT["steps"].append("%.1f %s" % (time.time() - REPORT["started"], message))
    print("[sdedit_e2e] " + message, file=sys.stderr, flush=True)


def write_report(finished):
    REPORT["finished"] = finished
    REPORT["elapsed_s"] = time.time() - REPORT["started"]
    path = os.path.join(CONFIG["out_dir"], "report.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(REPORT, handle, indent=1)
    os.replace(path + ".tmp", path)


def quit_krita(code):
    """Close every document unsaved, then end the process (Krita 5.1 may crash in its own shutdown)."""
    for document in Krita.instance().documents():
        try:
            document.setModified(False)
            document.close()
        except Exception:
            pass
    QApplication.processEvents()
    sys.stderr.flush()
    os._exit(code)


def wait(seconds, until=None):
    """Run Krita's event loop for up to ``seconds`` (or until ``until()`` is true)."""
    end = time.time() + seconds
    while time.time() < end:
        if until is not None and until():
            return True
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec_()
    return until() if until is not None else True


def wait_report(controller, seconds=180):
    wait(seconds, lambda: controller.report is not None)
    return controller.report


# ------------------------------------------------------------------------------------------ drawing


def stroke_image(width, height):
    """White paper with a few thick coloured strokes (BGRA bytes), scaled to the image size."""
    data = bytearray(b"\xff\xff\xff\xff" * width * height)
    radius = max(2, min(width, height) // 24)

    def dab(cx, cy, bgra):
        for y in range(max(0, cy - radius), min(height, cy + radius + 1)):
            for x in range(max(0, cx - radius), min(width, cx + radius + 1)):
                if (x - cx) ** 2 + (y - cy) ** 2 <= radius * radius:
                    data[4 * (y * width + x):4 * (y * width + x) + 4] = bgra

    for i in range(0, 101):
        t = i / 100.0
        dab(int(width * (0.05 + 0.85 * t)), int(height * (0.08 + 0.75 * t)), bytes((200, 60, 20, 255)))  # blue
        dab(int(width * (0.1 + 0.75 * t)), int(height * 0.62), bytes((30, 40, 220, 255)))  # red
        dab(int(width * 0.7), int(height * (0.1 + 0.5 * t)), bytes((40, 160, 40, 255)))  # green
    return bytes(data)


def paint(document, node, data, rect):
    node.setPixelData(data, *rect)
    document.refreshProjection()
    wait(0.2)


def dump_png(name, width, height, data, channels=4):
    from sdedit_client.png import encode_png

    path = os.path.join(CONFIG["out_dir"], name)
    with open(path, "wb") as handle:
        handle.write(encode_png(width, height, data, channels))
    return name


def rgba_of(node, rect):
    from sdedit.layer_io import convert_pixels
    from sdedit.pixels import SRGB8, is_native_srgb8, swap_red_blue

    raw = bytes(node.pixelData(*rect))
    space = (node.colorModel(), node.colorDepth(), node.colorProfile())
    if not is_native_srgb8(*space):
        raw = convert_pixels(raw, rect[2], rect[3], space, SRGB8)
    return swap_red_blue(raw)


def tree(node):
    out = []
    for child in node.childNodes():
        b = child.bounds()
        out.append({"name": child.name(), "type": child.type(), "bounds": [b.x(), b.y(), b.width(), b.height()],
                    "depth": child.colorDepth(), "children": tree(child)})
    return out


def new_document(name, width, height, depth="U8"):
    app = Krita.instance()
    profile = "sRGB-elle-V2-srgbtrc.icc"
    document = app.createDocument(width, height, name, "RGBA", depth, profile, 72.0)
    app.activeWindow().addView(document)
    wait(0.3)
    return document


# --------------------------------------------------------------------------------------------- cases


def case_menu(case):
    """Where the SDEdit… action landed: the Filters menu, registered under its id (shortcut-able)."""
    import sdedit

    window = Krita.instance().activeWindow()
    menus = {}
    for action in window.qwindow().menuBar().actions():
        if action.menu() is not None:
            menus[action.objectName()] = [a.objectName() for a in action.menu().actions() if a.objectName()]
    case["menubar"] = {name: len(items) for name, items in menus.items()}
    case["menus_with_action"] = [name for name, items in menus.items() if sdedit.ACTION_ID in items]
    action = Krita.instance().action(sdedit.ACTION_ID)
    case["registered"] = action is not None
    case["action_text"] = action.text() if action is not None else None


def case_masked_two_samples(case):
    """8-bit layer with strokes and a rectangular selection; K=2 through the scripting entry point."""
    import sdedit

    width, height = 96, 64
    document = new_document("sdedit-e2e-masked", width, height)
    node = document.activeNode()
    paint(document, node, stroke_image(width, height), (0, 0, width, height))
    selection = Selection()
    selection.select(24, 12, 48, 36, 255)
    document.setSelection(selection)
    wait(0.3)
    rect = (0, 0, width, height)
    case["source"] = dump_png("masked-source.png", width, height, rgba_of(node, rect))
    case["mask"] = dump_png("masked-mask.png", width, height, bytes(document.selection().pixelData(*rect)), 1)
    controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "vp", "samples": 2,
                                  "steps": 6, "seed_mode": "fixed", "seed": 7, "model": "",
                                  "result_layer": "full"}, document=document)
    report = wait_report(controller)
    case["report"] = report
    case["tree"] = tree(document.rootNode())
    results = []
    for group in document.rootNode().childNodes():
        for child in group.childNodes():
            if child.name().startswith("SDEdit"):
                results.append({"name": child.name(), "png": dump_png("masked-%s.png" % child.name().split("#")[1][0],
                                                                      width, height, rgba_of(child, rect))})
    case["results"] = results
    # one undo step for the whole insertion?
    Krita.instance().action("edit_undo").trigger()
    wait(0.5)
    document.waitForDone()
    case["after_undo"] = [c.name() for c in document.rootNode().childNodes()]
    Krita.instance().action("edit_redo").trigger()
    wait(0.5)
    document.waitForDone()
    case["after_redo"] = [c.name() for c in document.rootNode().childNodes()]


def soft_selection(width, height, box, band):
    """A selection mask (1 byte per pixel): 255 inside ``box``, falling off linearly over ``band`` pixels."""
    x0, y0, x1, y1 = box
    data = bytearray(width * height)
    for y in range(height):
        for x in range(width):
            dx = max(x0 - x, 0, x - (x1 - 1))
            dy = max(y0 - y, 0, y - (y1 - 1))
            d = max(dx, dy)
            data[y * width + x] = 255 if d == 0 else max(0, 255 - (255 * d) // (band + 1))
    return bytes(data)


def case_selection_only(case):
    """Default result layer with a soft selection: only the selection, its soft edge as alpha; no prompt,
    the model's default sampler (no "sde" sent)."""
    import sdedit

    width, height = 96, 64
    document = new_document("sdedit-e2e-selection-only", width, height)
    node = document.activeNode()
    paint(document, node, stroke_image(width, height), (0, 0, width, height))
    selection = Selection()
    selection.setPixelData(soft_selection(width, height, (28, 16, 68, 48), 6), 0, 0, width, height)
    document.setSelection(selection)
    wait(0.3)
    rect = (0, 0, width, height)
    case["source"] = dump_png("selonly-source.png", width, height, rgba_of(node, rect))
    case["mask"] = dump_png("selonly-mask.png", width, height, bytes(document.selection().pixelData(*rect)), 1)
    controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 0.5, "sde": "", "samples": 1,
                                  "steps": 6, "seed_mode": "fixed", "seed": 11, "model": "",
                                  "prompt": "a lake", "result_layer": "selection"}, document=document)
    case["report"] = wait_report(controller)
    case["tree"] = tree(document.rootNode())
    for child in document.rootNode().childNodes():
        if child.name().startswith("SDEdit"):
            case["result"] = dump_png("selonly-result.png", width, height, rgba_of(child, rect))
    document.refreshProjection()
    document.waitForDone()
    case["projection"] = dump_png("selonly-projection.png", width, height,
                                  swap_bgra(bytes(document.pixelData(*rect))))


def swap_bgra(data):
    from sdedit.pixels import swap_red_blue

    return swap_red_blue(data)


def case_group_active(case):
    """A group as the active layer is edited as its merged picture; the result goes above the group.

    Made as a painter makes it: Layer > New > Group Layer (Krita makes the new group active), then two layers
    in it: strokes on the left half over yellow paper."""
    import sdedit
    from sdedit.layer_io import require_paint_layer
    from sdedit_client import SDEditError

    width, height = 48, 40
    document = new_document("sdedit-e2e-group", width, height)
    paint(document, document.activeNode(), stroke_image(width, height), (0, 0, width, height))
    Krita.instance().action("add_new_group_layer").trigger()
    wait(5, lambda: any(n.type() == "grouplayer" for n in document.rootNode().childNodes()))
    group = [n for n in document.rootNode().childNodes() if n.type() == "grouplayer"][0]
    group.setName("Sky")
    half = bytearray(stroke_image(width, height))  # strokes on the left half, the right half transparent
    for y in range(height):
        for x in range(width // 2, width):
            half[4 * (y * width + x) + 3] = 0
    strokes_layer = document.createNode("Strokes", "paintlayer")
    strokes_layer.setPixelData(bytes(half), 0, 0, width, height)
    paper = document.createNode("Paper", "paintlayer")
    paper.setPixelData(bytes((0, 220, 250, 255)) * (width * height), 0, 0, width, height)
    group.addChildNode(paper, None)
    group.addChildNode(strokes_layer, paper)
    document.refreshProjection()
    document.waitForDone()
    rect = (0, 0, width, height)
    case["merged"] = dump_png("group-merged.png", width, height, swap_bgra(bytes(group.projectionPixelData(*rect))))
    case["lower"] = dump_png("group-lower.png", width, height, rgba_of(strokes_layer, rect))
    selection = Selection()
    selection.select(8, 20, 24, 16, 255)
    document.setSelection(selection)
    wait(2.0)  # Krita may activate a layer added to the group meanwhile
    case["mask"] = dump_png("group-mask.png", width, height, bytes(document.selection().pixelData(*rect)), 1)
    case["steps_to_group"] = []
    for _ in range(3):  # Krita sometimes hands the focus to a layer added in the group: give it back
        active = document.activeNode()
        case["steps_to_group"].append(active.name() if active is not None else None)
        if active is not None and active.type() == "grouplayer":
            break
        document.setActiveNode(group)  # works for a node Krita made itself (not for ones added from Python)
        wait(3, lambda: document.activeNode() is not None and document.activeNode().type() == "grouplayer")
    case["active_type"] = document.activeNode().type() if document.activeNode() is not None else None
    case["node_type"] = group.type()
    try:
        controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "vp", "samples": 1,
                                      "steps": 4, "seed_mode": "fixed", "seed": 13, "model": "",
                                      "result_layer": "full"}, document=document)
        case["edited"] = controller.source.node.name()
        case["report"] = wait_report(controller)
        case["message"] = None
    except SDEditError as error:
        case["report"] = None
        case["message"] = str(error)
    case["tree"] = tree(document.rootNode())
    for child in document.rootNode().childNodes():
        if child.name().startswith("SDEdit"):
            case["result"] = dump_png("group-result.png", width, height, rgba_of(child, rect))
    vector = document.createVectorLayer("Shapes")
    try:
        require_paint_layer(vector)
        case["vector_message"] = None
    except SDEditError as error:
        case["vector_message"] = str(error)


def find_docker():
    """The SDEdit docker, shown floating beside the canvas (so that real clicks reach it)."""
    from sdedit.docker import SDEditDocker

    docker = [d for d in Krita.instance().dockers() if isinstance(d, SDEditDocker)][0]
    window = Krita.instance().activeWindow().qwindow()
    window.move(0, 0)
    window.resize(1600, 1000)
    docker.show()
    docker.setFloating(True)
    docker.resize(470, 980)
    docker.move(1125, 10)
    docker.raise_()
    wait(0.3)
    return docker


def click(widget, pos=None):
    """A real left click (press and release) on ``widget`` at ``pos`` (its centre by default)."""
    from PyQt5.QtCore import QEvent, Qt
    from PyQt5.QtGui import QMouseEvent

    pos = pos if pos is not None else widget.rect().center()
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        event = QMouseEvent(kind, pos, widget.mapToGlobal(pos), Qt.LeftButton,
                            Qt.LeftButton if kind == QEvent.MouseButtonPress else Qt.NoButton, Qt.NoModifier)
        QApplication.sendEvent(widget, event)
        QApplication.processEvents()


def case_docker_pick(case):
    """Real clicks in the docker: Generate 3 results with steps left automatic, click the 3rd thumbnail, Apply."""
    from sdedit.pixels import swap_red_blue

    docker = find_docker()
    width, height = 48, 40
    document = new_document("sdedit-e2e-docker-pick", width, height)
    paint(document, document.activeNode(), stroke_image(width, height), (0, 0, width, height))
    docker.form.set_values({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "ddim", "samples": 3,
                            "steps": 0, "seed_mode": "fixed", "seed": 23, "model": "", "result_layer": "full"})
    wait(10, lambda: not docker.form.server_info_pending())
    click(docker.generate_button)
    case["started"] = docker.running()
    wait(240, lambda: not docker.running())
    report = dict(getattr(docker, "last_report", None) or {"ok": False, "message": "still running"})
    report.pop("images", None)
    case["report"] = report
    case["history"] = [docker.history_list.item(i).text() for i in range(docker.history_list.count())]
    case["settings_text"] = docker.settings_label.text()
    entry = docker.shown
    results = docker.results_list
    case["results"] = [results.item(i).text() for i in range(results.count())]
    case["row_before"] = results.currentRow()
    results.scrollToItem(results.item(2))
    click(results.viewport(), results.visualItemRect(results.item(2)).center())
    case["row_after_click"] = results.currentRow()
    before = [c.name() for c in document.rootNode().childNodes()]
    click(docker.apply_button)
    document.waitForDone()
    wait(0.5)
    case["added"] = [c.name() for c in document.rootNode().childNodes() if c.name() not in before]
    rect = (0, 0, width, height)
    for index, image in enumerate(entry.images if entry is not None else []):
        dump_png("pick-result-%d.png" % (index + 1), width, height, swap_red_blue(image))
    for child in document.rootNode().childNodes():
        if child.name() in case["added"]:
            case["applied_png"] = dump_png("pick-applied.png", width, height, rgba_of(child, rect))


def erased(data):
    """What Krita's eraser leaves of BGRA pixels: the colour stays, the alpha goes to 0."""
    out = bytearray(data)
    out[3::4] = bytes(len(data) // 4)
    return bytes(out)


def case_empty_layer(case):
    """A fully transparent layer (painted, then erased) is refused with one sentence, before any job: from a
    script, and from the docker's Generate."""
    import sdedit
    from sdedit_client import SDEditError

    width, height = 40, 32
    document = new_document("sdedit-e2e-empty", width, height)
    layer = document.activeNode()
    paint(document, layer, erased(stroke_image(width, height)), (0, 0, width, height))
    b = layer.bounds()
    case["bounds"] = [b.x(), b.y(), b.width(), b.height()]
    case["active"] = layer.name()
    before = [c.name() for c in document.rootNode().childNodes()]
    runs = []
    for selected in (None, (4, 4, 16, 12)):
        if selected:
            # one visible pixel again, but outside the selection
            strokes = bytearray(erased(stroke_image(width, height)))
            strokes[4 * (30 * width + 36):4 * (30 * width + 36) + 4] = bytes((0, 0, 255, 255))
            paint(document, layer, bytes(strokes), (0, 0, width, height))
            selection = Selection()
            selection.select(*selected, 255)
            document.setSelection(selection)
            wait(0.3)
        try:
            controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 0.5, "samples": 3, "steps": 4},
                                         document=document)
            controller.cancel()
            runs.append({"started": True, "report": wait_report(controller, 60)})
        except SDEditError as error:
            runs.append({"started": False, "message": str(error)})
    case["runs"] = runs
    docker = find_docker()
    docker.form.set_values({"server_url": CONFIG["server_url"], "samples": 1, "steps": 4})
    case["docker_started"] = docker.generate()
    case["docker_status"] = docker.status_label.text()
    if case["docker_started"]:
        docker.controller.cancel()
        wait(60, lambda: not docker.running())
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes() if c.name() != "Selection Mask"]
    case["layers_before"] = before


def case_docker_server(case):
    """The docker with a local URL where no server runs yet: it says so; Generate starts the server, and then
    the docker says it is connected."""
    os.environ["SDEDIT_SERVER_RECORD"] = CONFIG["record"]
    docker = find_docker()
    width, height = 40, 32
    document = new_document("sdedit-e2e-docker-server", width, height)
    paint(document, document.activeNode(), stroke_image(width, height), (0, 0, width, height))
    docker.form.set_values({"server_url": CONFIG["restart_url"], "t0": 0.5, "sde": "ddim", "samples": 1,
                            "steps": 0, "seed_mode": "fixed", "seed": 31, "model": "", "result_layer": "full"})
    wait(15, lambda: "answers" in docker.form.server_label.text())
    case["label_before"] = docker.form.server_label.text()
    case["started"] = docker.generate()
    wait(240, lambda: not docker.running())
    report = dict(getattr(docker, "last_report", None) or {"ok": False, "message": "still running"})
    report.pop("images", None)
    case["report"] = report
    wait(20, lambda: docker.form.server_label.text().startswith("Connected"))
    case["label_after"] = docker.form.server_label.text()
    case["history"] = [docker.history_list.item(i).text() for i in range(docker.history_list.count())]


def case_server_stopped(case):
    """The server the plugin started is killed mid-job: the message says it stopped, with its log's last line,
    and offers to start it again; pressing that starts the server again and repeats the edit."""
    import signal

    import sdedit

    os.environ["SDEDIT_SERVER_RECORD"] = CONFIG["record"]
    port = int(CONFIG["restart_url"].rsplit(":", 1)[1])
    state_path = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sdedit",
                              "server-%d.json" % port)
    document = new_document("sdedit-e2e-server-stopped", 48, 40)
    paint(document, document.activeNode(), stroke_image(48, 40), (0, 0, 48, 40))
    seen = {"boxes": []}

    def sweep():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            entry = {"name": box.objectName(), "text": box.text(), "informative": box.informativeText(),
                     "buttons": [b.text().replace("&", "") for b in box.buttons()]}
            seen["boxes"].append(entry)
            restart = [b for b in box.buttons() if b.text().replace("&", "") == RESTART_BUTTON]
            if restart and not seen.get("restarted"):
                seen["restarted"] = True
                seen["log_last_line"] = _last_line(seen.get("log"))
                restart[0].click()
            else:
                box.close()
        if not seen.get("stop"):
            QTimer.singleShot(200, sweep)

    QTimer.singleShot(200, sweep)
    controller = sdedit.run_edit({"server_url": CONFIG["restart_url"], "t0": 1.0, "sde": "vp", "samples": 1,
                                  "steps": 150, "seed_mode": "fixed", "seed": 41, "result_layer": "full"},
                                 document=document, interactive=True)
    wait(240, lambda: controller.report is not None or (controller._progress is not None
                                                        and controller._progress.value() > 0
                                                        and not controller._starting))
    state = json.load(open(state_path)) if os.path.exists(state_path) else {}
    case["state_before"] = state
    seen["log"] = state.get("log")
    if state.get("pid") and controller.report is None:
        os.kill(int(state["pid"]), signal.SIGKILL)
        case["killed"] = int(state["pid"])
    case["report"] = wait_report(controller, 60)
    wait(240, lambda: controller.retry is not None and controller.retry.report is not None)
    case["retry_report"] = controller.retry.report if controller.retry is not None else None
    seen["stop"] = True
    wait(0.5)
    case["boxes"] = seen["boxes"]
    case["log_last_line"] = seen.get("log_last_line")
    case["state_after"] = json.load(open(state_path)) if os.path.exists(state_path) else {}
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes()]


RESTART_BUTTON = "Start the server again"  # the plugin's button (controller.RESTART_BUTTON)


def _last_line(path):
    if not path or not os.path.exists(path):
        return None
    lines = [line.strip() for line in open(path, errors="replace").read().splitlines() if line.strip()]
    return lines[-1] if lines else None


def image_key(pixmap):
    """A digest of what a QPixmap shows (None for no picture)."""
    import hashlib

    from PyQt5.QtGui import QImage

    if pixmap is None or pixmap.isNull():
        return None
    image = pixmap.toImage().convertToFormat(QImage.Format_ARGB32)
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    return hashlib.sha1(bytes(bits)).hexdigest()


def screenshot_window(name):
    """The whole (virtual) screen: Krita's window with the floating docker, as a painter sees it."""
    QApplication.primaryScreen().grabWindow(0).save(os.path.join(CONFIG["out_dir"], name))


def case_docker(case):
    """Settings → Dockers → SDEdit: Generate a 20-step K=2 job with live preview, Apply one (one undo step),
    Apply all, and Run again (identical pixels)."""
    from sdedit.docker import SDEditDocker

    dockers = [d for d in Krita.instance().dockers() if isinstance(d, SDEditDocker)]
    case["dockers"] = len(dockers)
    docker = dockers[0]
    case["title"] = docker.windowTitle()
    window = Krita.instance().activeWindow().qwindow()
    window.move(0, 0)
    window.resize(1600, 1000)
    docker.show()
    docker.setFloating(True)  # floated beside the canvas at a readable size, for the screenshots
    docker.resize(470, 980)
    docker.move(1125, 10)
    docker.raise_()
    width, height = 128, 96
    document = new_document("sdedit-e2e-docker", width, height)
    paint(document, document.activeNode(), stroke_image(width, height), (0, 0, width, height))
    selection = Selection()
    selection.select(24, 16, 80, 64, 255)
    document.setSelection(selection)
    wait(0.5)
    docker.form.set_values({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "", "samples": 2, "steps": 20,
                            "seed_mode": "fixed", "seed": 17, "model": "", "result_layer": "selection"})
    wait(5, lambda: not docker.form.server_info_pending())
    keys = []
    case["started"] = docker.generate()

    def watch():
        if docker.running():
            key = image_key(docker.preview_label.pixmap())
            if key is not None and (not keys or keys[-1] != key):
                keys.append(key)
                if len(keys) == 2:
                    docker.grab().save(os.path.join(CONFIG["out_dir"], "krita-docker-running.png"))
                    screenshot_window("krita-docker-running-window.png")
        return not docker.running()

    end = time.time() + 300
    while time.time() < end and not watch():
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec_()
    case["preview_keys"] = keys
    case["previews_shown"] = docker.previews_shown
    report = dict(docker.last_report)
    report.pop("images", None)
    case["report"] = report
    case["history"] = [docker.history_list.item(i).text() for i in range(docker.history_list.count())]
    case["results"] = [docker.results_list.item(i).text() for i in range(docker.results_list.count())]
    wait(0.5)
    docker.grab().save(os.path.join(CONFIG["out_dir"], "krita-docker-done.png"))
    screenshot_window("krita-docker-done-window.png")
    before = [c.name() for c in document.rootNode().childNodes()]
    case["applied"] = docker.apply_selected(1)
    document.waitForDone()
    wait(0.5)
    case["after_apply"] = [c.name() for c in document.rootNode().childNodes()]
    for child in document.rootNode().childNodes():
        if case["applied"] and child.name() == case["applied"][0]:
            case["applied_png"] = dump_png("docker-applied.png", width, height, rgba_of(child, (0, 0, width, height)))
    Krita.instance().action("edit_undo").trigger()
    wait(0.5)
    document.waitForDone()
    case["after_undo"] = [c.name() for c in document.rootNode().childNodes()]
    case["layers_before"] = before
    case["applied_all"] = docker.apply_all()
    document.waitForDone()
    wait(0.5)
    case["tree_after_all"] = tree(document.rootNode())
    first = docker.history[-1]
    case["first_seeds"] = first.seeds
    case["run_again_started"] = docker.run_again(first)
    wait(300, lambda: not docker.running())
    again = docker.history[-1]
    case["again_seeds"] = again.seeds
    case["again_is_new_entry"] = again is not first
    case["again_identical"] = again.images == first.images
    case["again_bytes"] = [len(i) for i in again.images]
    case["history_after"] = [docker.history_list.item(i).text() for i in range(docker.history_list.count())]


def stroke_rect(width, height, k):
    """Stroke k of the live case: a short thick diagonal dab line in its own colour (BGRA), as (rect, bytes)."""
    colours = [(200, 60, 20), (30, 40, 220), (40, 160, 40), (20, 200, 230), (160, 40, 160), (90, 90, 90)]
    x0, y0 = 2 + (k * 5) % (width - 14), 2 + (k * 7) % (height - 14)
    side = 12
    data = bytearray()
    for y in range(side):
        for x in range(side):
            on = abs(x - y) <= 2
            data += bytes(colours[k % len(colours)]) + b"\xff" if on else b"\x00\x00\x00\x00"
    return (x0, y0, side, side), bytes(data)


def paint_stroke(document, node, width, height, k):
    """Paint stroke k over the layer's current pixels (transparent parts of the dab keep them)."""
    rect, dab = stroke_rect(width, height, k)
    old = bytearray(node.pixelData(*rect))
    for i in range(0, len(dab), 4):
        if dab[i + 3]:
            old[i:i + 4] = dab[i:i + 4]
    node.setPixelData(bytes(old), *rect)
    document.refreshProjection()


class ShowCounter:
    """Counts the Show events of one widget: a busy bar shown for a few milliseconds between two polls of
    the test's wait loop is still seen (polling isVisible() missed it once in CI)."""

    def __init__(self, widget):
        from PyQt5.QtCore import QEvent, QObject

        counter = self

        class _Filter(QObject):
            def eventFilter(self, watched, event):
                if event.type() == QEvent.Show:
                    counter.shown += 1
                return False

        self.shown = 0
        self._filter = _Filter()
        self._widget = widget
        widget.installEventFilter(self._filter)

    def close(self) -> None:
        self._widget.removeEventFilter(self._filter)


def live_panel():
    from sdedit.docker import SDEditDocker

    docker = [d for d in Krita.instance().dockers() if isinstance(d, SDEditDocker)][0]
    docker.show()
    return docker, docker.live


def case_live(case):
    """The docker's Live toggle: strokes painted by script one by one give distinct previews, the last one of
    the final canvas; Apply renders it at full size with the same seed as one layer (one undo step)."""
    from sdedit_client import Client

    docker, panel = live_panel()
    width = height = 32  # the tiny model's live size: the live request is the canvas itself, unscaled
    document = new_document("sdedit-e2e-live", width, height)
    node = document.activeNode()
    paint(document, node, stroke_image(width, height), (0, 0, width, height))
    docker.form.set_values({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "", "samples": 1, "steps": 0,
                            "seed_mode": "fixed", "seed": 23, "model": "", "result_layer": "full"})
    wait(5, lambda: not docker.form.server_info_pending())
    panel.toggle.click()  # as the painter does
    case["live_on"] = panel.is_live()
    keys = []
    busy = ShowCounter(panel.busy_bar)

    def watch():
        key = image_key(panel.preview.pixmap())
        if key is not None and (not keys or keys[-1] != key):
            keys.append(key)

    def idle():
        watch()
        return (panel.result is not None and panel.result["version"] == panel.version
                and not panel.busy_bar.isVisible())

    wait(60, idle)
    strokes = []
    for k in range(6):
        paint_stroke(document, node, width, height, k)
        strokes.append(time.time())
        wait(0.7 if k % 2 else 0.15, lambda: (watch(), False)[1])  # some strokes come faster than results
    case["idle"] = wait(60, idle)
    case["preview_keys"] = keys
    case["updates_shown"] = panel.updates_shown
    case["versions"] = panel.version
    case["sent"] = list(panel.worker.sent)
    case["live"] = dict(panel.worker.live)
    params = dict(panel.result["params"])
    case["params"] = params
    case["final_canvas"] = dump_png("live-final-canvas.png", width, height, rgba_of(node, (0, 0, width, height)))
    with open(os.path.join(CONFIG["out_dir"], "live-last-preview.png"), "wb") as handle:
        handle.write(panel.result["png"])
    client = Client(CONFIG["server_url"])
    case["sent_states"] = [client.status(job)["state"] for job in panel.worker.sent]
    case["busy_seen"] = busy.shown > 0
    busy.close()
    before = [c.name() for c in document.rootNode().childNodes()]
    case["apply_started"] = panel.apply()
    wait(120, lambda: panel.apply_controller is None)
    document.waitForDone()
    wait(0.5)
    case["apply_report"] = {k: v for k, v in panel.last_apply.items() if k != "images"}
    after = [c.name() for c in document.rootNode().childNodes()]
    case["layers_before"], case["layers_after_apply"] = before, after
    for child in document.rootNode().childNodes():
        if child.name() not in before:
            case["applied_png"] = dump_png("live-applied.png", width, height, rgba_of(child, (0, 0, width, height)))
    case["sent_after_apply"] = len(panel.worker.sent)
    Krita.instance().action("edit_undo").trigger()
    wait(0.5)
    document.waitForDone()
    case["layers_after_undo"] = [c.name() for c in document.rootNode().childNodes()]
    panel.toggle.click()
    case["live_after_off"] = panel.is_live()


def case_live_off(case):
    """Live off while a long live job runs (the slow model's live defaults: 600 VP steps): within a second
    nothing of the session runs on the server, and strokes painted afterwards send nothing."""
    from sdedit_client import Client

    docker, panel = live_panel()
    width = height = 32
    document = new_document("sdedit-e2e-live-off", width, height)
    node = document.activeNode()
    paint(document, node, stroke_image(width, height), (0, 0, width, height))
    docker.form.set_values({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "", "samples": 1, "steps": 0,
                            "seed_mode": "random", "model": CONFIG["slow_model"]})
    wait(5, lambda: not docker.form.server_info_pending())
    panel.toggle.click()
    client = Client(CONFIG["server_url"])
    worker = panel.worker

    def running():
        return bool(worker.sent) and client.status(worker.sent[-1])["state"] == "running" \
            and client.status(worker.sent[-1])["progress"] > 0.01

    case["running"] = wait(60, running)
    case["busy_visible"] = panel.busy_bar.isVisible()
    job = worker.sent[-1]
    case["live"] = dict(worker.live)
    ended = []
    worker.finished.connect(lambda: ended.append(time.time()))
    off_at = time.time()
    panel.toggle.click()
    case["off_call_s"] = time.time() - off_at  # the GUI must not wait for the server

    def stopped():
        return client.status(job)["state"] in ("cancelled", "done", "failed")

    wait(5, stopped)
    case["stopped_after_s"] = time.time() - off_at
    case["job_state"] = client.status(job)
    wait(2, lambda: bool(ended))
    case["worker_finished_after_s"] = (ended[0] if ended else time.time()) - off_at
    sent_list, sent = worker.sent, len(worker.sent)  # the list itself: the stopped thread's object goes away
    paint_stroke(document, node, width, height, 3)
    wait(1.5)
    case["sent_after_off"] = len(sent_list) - sent + (1 if panel.worker is not None else 0)
    case["live_after_off"] = panel.is_live()
    case["busy_after_off"] = panel.busy_bar.isVisible()


def case_live_cost(case):
    """What Live costs the painter between strokes: the time of one look at an unchanged 2048x1536 layer (the
    timer's work every 400 ms), and of one look that finds a change (read, checksum, scale to the live size)."""
    docker, panel = live_panel()
    width, height = 2048, 1536
    document = new_document("sdedit-e2e-live-cost", width, height)
    node = document.activeNode()
    paint(document, node, stroke_image(width, height), (0, 0, width, height))
    docker.form.set_values({"server_url": CONFIG["server_url"], "t0": 0.6, "sde": "", "samples": 1, "steps": 0,
                            "seed_mode": "fixed", "seed": 3, "model": ""})
    panel.toggle.click()
    wait(60, lambda: panel.updates_shown >= 1)
    panel.timer.stop()  # timed by hand below
    unchanged = []
    case["version_before"] = panel.version
    digests = []
    for _ in range(5):
        started = time.perf_counter()
        panel.look()
        unchanged.append(time.perf_counter() - started)
        digests.append([panel.version, panel.watched[2] if panel.watched else None])
    case["digests"] = digests
    changed = []
    for k in range(3):
        paint_stroke(document, node, 64, 64, k)
        started = time.perf_counter()
        panel.look()
        changed.append(time.perf_counter() - started)
    case["unchanged_ms"] = [round(1000 * t, 1) for t in unchanged]
    case["changed_ms"] = [round(1000 * t, 1) for t in changed]
    case["versions"] = panel.version
    panel.toggle.click()
    case["live_after_off"] = panel.is_live()


def case_autostart(case):
    """No server at a local URL: the plugin starts the recorded installation's server and runs the edit."""
    import sdedit

    os.environ["SDEDIT_SERVER_RECORD"] = CONFIG["record"]
    document = new_document("sdedit-e2e-autostart", 48, 40)
    paint(document, document.activeNode(), stroke_image(48, 40), (0, 0, 48, 40))
    statuses = []
    controller = sdedit.run_edit({"server_url": CONFIG["autostart_url"], "t0": 0.5, "sde": "", "samples": 1,
                                  "steps": 4, "seed_mode": "fixed", "seed": 9}, document=document)
    controller.status.connect(statuses.append)
    case["report"] = wait_report(controller, 240)
    case["statuses"] = statuses
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes()]


def case_prompt(case):
    """A text model (tiny Stable Diffusion): the form enables the prompt fields for it only; the prompt goes
    with the job and into the layer name; another prompt with the same seed gives other pixels."""
    import sdedit
    from sdedit.settings_form import SettingsForm

    form = SettingsForm({"server_url": CONFIG["server_url"], "model": ""})
    form.refresh_server_info()
    wait(30, lambda: not form.server_info_pending())
    wait(0.5)
    case["enabled_default_model"] = form.prompt_edit.isEnabled()
    form.set_values({"model": CONFIG["text_model"]})
    case["enabled_text_model"] = [w.isEnabled() for w in (form.prompt_edit, form.negative_edit, form.guidance_spin)]
    form.detach()
    form.deleteLater()

    width, height = 64, 64
    document = new_document("sdedit-e2e-prompt", width, height)
    paint(document, document.activeNode(), stroke_image(width, height), (0, 0, width, height))
    runs = []
    for prompt in ("a lake at dusk", "a red barn in snow"):
        controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "model": CONFIG["text_model"],
                                      "t0": 0.6, "sde": "", "samples": 1, "steps": 3, "seed_mode": "fixed",
                                      "seed": 5, "prompt": prompt, "negative_prompt": "blurry", "guidance": 5.0,
                                      "result_layer": "full"}, document=document)
        report = wait_report(controller, 240)
        runs.append(report)
    case["reports"] = runs
    case["layers"] = [c.name() for c in document.rootNode().childNodes()]
    pixels = [bytes(c.pixelData(0, 0, width, height)) for c in document.rootNode().childNodes()
              if c.name().startswith("SDEdit")]
    case["results_differ"] = len(pixels) == 2 and pixels[0] != pixels[1]


def no_install_record():
    """Down-server cases: nothing is recorded, so the plugin cannot start a server and says so."""
    os.environ["SDEDIT_SERVER_RECORD"] = os.path.join(CONFIG["out_dir"], "no-such-record.json")


def case_16bit_offset_layer(case):
    """16-bit document, a paint layer with content only in part of the canvas, no selection, K=1, VE."""
    import sdedit

    width, height = 80, 56
    document = new_document("sdedit-e2e-16bit", width, height, depth="U16")
    layer = document.createNode("Strokes", "paintlayer")
    document.rootNode().addChildNode(layer, document.rootNode().childNodes()[-1])
    # paint 8-bit strokes at (30, 10) size 40x36, converted to U16 through Krita itself
    from sdedit.layer_io import convert_pixels
    from sdedit.pixels import SRGB8

    patch = stroke_image(40, 36)
    raw = convert_pixels(patch, 40, 36, SRGB8, ("RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc"))
    paint(document, layer, raw, (30, 10, 40, 36))
    document.setActiveNode(layer)
    wait(0.3)
    b = layer.bounds()
    rect = (b.x(), b.y(), b.width(), b.height())
    case["source_rect"] = list(rect)
    case["source_depth"] = layer.colorDepth()
    case["source"] = dump_png("u16-source.png", rect[2], rect[3], rgba_of(layer, rect))
    controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 0.4, "sde": "ve", "samples": 1,
                                  "steps": 5, "seed_mode": "fixed", "seed": 3}, document=document)
    case["report"] = wait_report(controller)
    case["tree"] = tree(document.rootNode())
    for child in document.rootNode().childNodes():
        if child.name().startswith("SDEdit"):
            case["result"] = dump_png("u16-result.png", rect[2], rect[3], rgba_of(child, rect))
    Krita.instance().action("edit_undo").trigger()
    wait(0.5)
    document.waitForDone()
    case["after_undo"] = [c.name() for c in document.rootNode().childNodes()]


def case_f32_linear(case):
    """32-bit float linear-light document with a selection: converted to sRGB 8-bit and back by Krita."""
    import sdedit
    from sdedit.layer_io import convert_pixels
    from sdedit.pixels import SRGB8

    width, height = 64, 48
    space = ("RGBA", "F32", "sRGB-elle-V2-g10.icc")
    app = Krita.instance()
    document = app.createDocument(width, height, "sdedit-e2e-f32", space[0], space[1], space[2], 72.0)
    app.activeWindow().addView(document)
    wait(0.3)
    node = document.activeNode()
    paint(document, node, convert_pixels(stroke_image(width, height), width, height, SRGB8, space),
          (0, 0, width, height))
    selection = Selection()
    selection.select(16, 8, 32, 32, 255)
    document.setSelection(selection)
    wait(0.3)
    rect = (0, 0, width, height)
    case["source_space"] = [node.colorModel(), node.colorDepth(), node.colorProfile()]
    case["source"] = dump_png("f32-source.png", width, height, rgba_of(node, rect))
    case["mask"] = dump_png("f32-mask.png", width, height, bytes(document.selection().pixelData(*rect)), 1)
    controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 0.5, "sde": "vp", "samples": 1,
                                  "steps": 4, "seed_mode": "fixed", "seed": 5, "result_layer": "full"},
                                 document=document)
    case["report"] = wait_report(controller)
    case["tree"] = tree(document.rootNode())
    for child in document.rootNode().childNodes():
        if child.name().startswith("SDEdit"):
            case["result_space"] = [child.colorModel(), child.colorDepth(), child.colorProfile()]
            case["result"] = dump_png("f32-result.png", width, height, rgba_of(child, rect))


def case_cancel(case):
    """A long job cancelled from the progress dialog's Cancel: 'cancelled', and no layer added."""
    import sdedit

    document = new_document("sdedit-e2e-cancel", 64, 64)
    paint(document, document.activeNode(), stroke_image(64, 64), (0, 0, 64, 64))
    before = [c.name() for c in document.rootNode().childNodes()]
    controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 1.0, "samples": 4, "steps": 1000,
                                  "seed_mode": "random"}, document=document)
    wait(60, lambda: controller._worker is not None and controller._progress is not None
         and controller._progress.value() > 0)
    case["progress_before_cancel"] = controller._progress.value() if controller._progress else None
    started = time.time()
    buttons = controller._progress.findChildren(QPushButton)
    case["cancel_button"] = [b.text() for b in buttons]
    buttons[0].click()  # the progress dialog's Cancel button
    case["report"] = wait_report(controller, 60)
    case["cancel_seconds"] = time.time() - started
    case["layers_before"] = before
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes()]


def case_closed(case):
    """The image is closed while its long job runs: the job is cancelled at once, its progress dialog goes,
    no crash, nothing written anywhere."""
    import sdedit

    document = new_document("sdedit-e2e-closed", 64, 64)
    paint(document, document.activeNode(), stroke_image(64, 64), (0, 0, 64, 64))
    controller = sdedit.run_edit({"server_url": CONFIG["server_url"], "t0": 1.0, "samples": 3, "steps": 997,
                                  "seed_mode": "random"}, document=document)
    wait(60, lambda: controller._progress is not None and controller._progress.value() > 0)
    case["progress_before_close"] = controller._progress.value() if controller._progress else None
    document.setModified(False)
    started = time.time()
    document.close()
    case["report"] = wait_report(controller, 120)
    case["close_seconds"] = time.time() - started
    wait(0.5)
    case["progress_dialogs"] = [w.objectName() for w in QApplication.topLevelWidgets()
                                if w.objectName() == "sdedit_progress" and w.isVisible()]
    case["documents_open"] = len(Krita.instance().documents())


def case_server_down(case):
    """No server at the URL: a one-sentence error saying how to start it, and no layer."""
    import sdedit

    no_install_record()
    document = new_document("sdedit-e2e-down", 32, 32)
    paint(document, document.activeNode(), stroke_image(32, 32), (0, 0, 32, 32))
    controller = sdedit.run_edit({"server_url": CONFIG["down_url"]}, document=document)
    case["report"] = wait_report(controller, 60)
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes()]


def trigger_action_with_dialog(screenshot=False, press_defaults=False):
    """Trigger Filters → SDEdit…, let the dialog ask the server, optionally screenshot it, press OK.

    Message boxes the interactive run shows are recorded and closed. Returns what was seen.
    """
    from sdedit import extension

    seen = {}

    def drive_dialog():
        dialog = QApplication.activeModalWidget()
        if dialog is None or dialog.objectName() != "sdedit_dialog":
            QTimer.singleShot(100, drive_dialog)
            return
        if dialog.server_info_pending() and seen.setdefault("waits", 0) < 200:
            seen["waits"] += 1
            QTimer.singleShot(100, drive_dialog)
            return
        QApplication.processEvents()
        seen["values"] = dialog.values()
        seen["server_label"] = dialog.server_label.text()
        seen["models"] = [dialog.model_combo.itemText(i) for i in range(dialog.model_combo.count())]
        form = dialog.form
        seen["remembered"] = form.remembered_label.text()
        seen["sde_items"] = [form.sde_combo.itemText(i) for i in range(form.sde_combo.count())]
        seen["prompt_enabled"] = form.prompt_edit.isEnabled()
        seen["result_full_copy"] = form.full_copy.isChecked()
        if press_defaults:
            form.defaults_button.click()
            QApplication.processEvents()
            seen["after_defaults"] = dialog.values()
            seen["remembered_after_defaults"] = form.remembered_label.text()
        if screenshot:
            dialog.grab().save(os.path.join(CONFIG["out_dir"], "krita-dialog-only.png"))
            # the whole (virtual) screen: Krita's window with the dialog over it, as a painter sees it
            window = Krita.instance().activeWindow().qwindow()
            dialog.move(window.frameGeometry().topLeft() + QPoint(160, 160))  # over the canvas
            wait(0.5)
            screen = QApplication.primaryScreen().grabWindow(0)
            screen.copy(window.frameGeometry()).save(os.path.join(CONFIG["out_dir"], "krita-dialog.png"))
        dialog.accept()

    def sweep_message_boxes():  # an interactive run shows errors in a box; record and close it
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.setdefault("message_boxes", []).append(box.text())
            box.close()
        if not seen.get("stop_sweeping"):
            QTimer.singleShot(200, sweep_message_boxes)

    QTimer.singleShot(100, drive_dialog)
    QTimer.singleShot(200, sweep_message_boxes)
    Krita.instance().action(extension.ACTION_ID).trigger()  # returns after the dialog closed
    return seen


def case_dialog_server_down(case):
    """The interactive path with no server: the dialog says so, and OK ends in a one-sentence message box."""
    from sdedit import extension

    no_install_record()
    extension.remember({"server_url": CONFIG["down_url"], "samples": 2, "steps": 4, "seed_mode": "fixed",
                        "seed": 5, "sde": "ve"})
    document = new_document("sdedit-e2e-dialog-down", 64, 48)
    paint(document, document.activeNode(), stroke_image(64, 48), (0, 0, 64, 48))
    seen = trigger_action_with_dialog(press_defaults=True)
    wait(30, lambda: seen.get("message_boxes"))
    seen["stop_sweeping"] = True
    case["dialog"] = seen
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes()]
    wait(0.5)


def case_dialog(case):
    """The real action: Filters → SDEdit… opens the dialog (screenshot), OK runs the edit."""
    from sdedit import extension

    extension.remember({"server_url": CONFIG["server_url"], "t0": 0.45, "sde": "vp", "samples": 1, "steps": 4,
                        "seed_mode": "fixed", "seed": 21, "model": ""})
    Krita.instance().activeWindow().qwindow().resize(1400, 900)
    document = new_document("sdedit-e2e-dialog", 128, 96)
    paint(document, document.activeNode(), stroke_image(128, 96), (0, 0, 128, 96))
    selection = Selection()
    selection.select(16, 16, 96, 64, 255)
    document.setSelection(selection)
    wait(0.5)
    seen = trigger_action_with_dialog(screenshot=True)
    case["dialog"] = seen
    controller = extension._RUNNING[-1] if extension._RUNNING else None
    case["report"] = wait_report(controller) if controller is not None else None
    case["layers_after"] = [c.name() for c in document.rootNode().childNodes()]
    wait(0.5)
    seen["stop_sweeping"] = True
    wait(2.0)
    window = Krita.instance().activeWindow().qwindow()
    QApplication.primaryScreen().grabWindow(0).copy(window.frameGeometry()).save(
        os.path.join(CONFIG["out_dir"], "krita-result.png"))


def case_models_panel(case):
    """The docker's Models panel: type a Hugging Face id, Download (from the fake Hub the server reaches through
    HF_ENDPOINT) with the progress bar moving, the LoRA listed as installed, then Remove."""
    docker = find_docker()
    panel = docker.models_panel
    docker.form.set_values({"server_url": CONFIG["server_url"]})
    panel.refresh()
    wait(20, lambda: panel.catalogue_list.count() > 0)
    case["catalogue"] = [panel.catalogue_list.item(i).text() for i in range(panel.catalogue_list.count())]
    panel.source_edit.setText(CONFIG["pull_source"])
    seen = []
    click(panel.download_button)
    case["started"] = panel.downloading()
    deadline = time.time() + 120
    while panel.downloading() and time.time() < deadline:
        seen.append(panel.progress.value())
        case["status_while"] = case.get("status_while") or (panel.status_label.text() if 0 < seen[-1] < 1000 else None)
        wait(0.05)
    case["progress_seen"] = sorted(set(seen))
    case["last_pull"] = panel.last_pull
    case["status"] = panel.status_label.text()
    wait(20, lambda: any("(LoRA)" in panel.installed_list.item(i).text() for i in range(panel.installed_list.count())))
    case["installed"] = [panel.installed_list.item(i).text() for i in range(panel.installed_list.count())]
    for i in range(panel.installed_list.count()):
        if "(LoRA)" in panel.installed_list.item(i).text():
            panel.installed_list.setCurrentRow(i)
    case["remove_started"] = panel.remove_selected(confirm=False)
    wait(20, lambda: not any("(LoRA)" in panel.installed_list.item(i).text()
                             for i in range(panel.installed_list.count())))
    case["installed_after_remove"] = [panel.installed_list.item(i).text() for i in range(panel.installed_list.count())]
    case["status_after_remove"] = panel.status_label.text()


CASES = [("menu", case_menu), ("dialog", case_dialog), ("masked", case_masked_two_samples),
         ("selection_only", case_selection_only), ("group_active", case_group_active), ("docker", case_docker),
         ("autostart", case_autostart), ("prompt", case_prompt),
         ("u16", case_16bit_offset_layer), ("f32", case_f32_linear), ("cancel", case_cancel), ("closed", case_closed),
         ("server_down", case_server_down), ("dialog_server_down", case_dialog_server_down),
         ("docker_pick", case_docker_pick), ("empty_layer", case_empty_layer), ("docker_server", case_docker_server),
         ("server_stopped", case_server_stopped), ("models_panel", case_models_panel), ("live", case_live),
         ("live_off", case_live_off), ("live_cost", case_live_cost)]


class Harness(Extension):
    def setup(self):
        if CONFIG is None:
            return
        QTimer.singleShot(int(CONFIG.get("timeout_s", 400) * 1000), self.give_up)
        QTimer.singleShot(500, self.start)

    def createActions(self, window):
        pass

    def give_up(self):
        log("harness timed out")
        write_report(False)
        quit_krita(3)

    def start(self):
        if Krita.instance().activeWindow() is None:
            QTimer.singleShot(300, self.start)
            return
        wait(1.0)
        log("krita window up, version %s" % Krita.instance().version())
        REPORT["krita_version"] = Krita.instance().version()
        only = CONFIG.get("cases")
        for name, run in CASES:
            if only and name not in only:
                continue
            case = REPORT["cases"].setdefault(name, {})
            started = time.time()
            log("case %s" % name)
            try:
                run(case)
            except Exception:
                case["exception"] = traceback.format_exc()
                log("case %s raised" % name)
            case["seconds"] = round(time.time() - started, 2)
            write_report(False)
        write_report(True)
        log("done")
        quit_krita(0)


Krita.instance().addExtension(Harness(Krita.instance()))
