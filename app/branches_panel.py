"""Branch arrows ("‹ 2/3 ›") and fork buttons on the chat's messages; conversation files.

The Chatbot has no per-message controls, so a small script (run by Gradio on page load,
allowed by the CSP like every event ``js``) draws them: it reads the path's branch points
(ids and numbers only, from a hidden textbox) and appends a nav to each message row,
built with ``textContent`` so nothing in it is markup. A click stores the message id and
presses a hidden button, whose event ``js`` hands the id to the Python handler. Message
text never reaches the script, so untrusted answers cannot forge a control.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from . import branches_handlers as bh

if TYPE_CHECKING:
    from engine.factory import Services

NAV_JS = """
() => {
  if (window.hearthBranchNav) return;
  window.hearthBranchNav = true;
  const press = (id, which) => {
    window.hearthBranchTarget = id;
    document.querySelector(which)?.click();
  };
  const button = (label, title, id, which) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'hearth-branch-btn';
    b.textContent = label;
    b.title = title;
    b.setAttribute('aria-label', title);
    if (!id) b.disabled = true;
    else b.addEventListener('click', (e) => { e.stopPropagation(); press(id, which); });
    return b;
  };
  const nav = (p) => {
    const n = document.createElement('div');
    n.className = 'hearth-branch-nav';
    n.dataset.key = [p.id, p.pos, p.total].join(':');
    if (p.total > 1) {
      n.append(button('‹', 'Previous version', p.prev, '#branch-go'));
      const count = document.createElement('span');
      count.className = 'hearth-branch-count';
      count.textContent = p.pos + '/' + p.total;
      n.append(count);
      n.append(button('›', 'Next version', p.next, '#branch-go'));
    }
    n.append(button('⑂', 'Fork a new chat from here', p.id, '#branch-fork'));
    return n;
  };
  const decorate = () => {
    const box = document.querySelector('#branch-data textarea');
    const chat = document.querySelector('#hearth-chat');
    if (!box || !chat) return;
    let points;
    try { points = JSON.parse(box.value || '[]'); } catch (e) { return; }
    if (!Array.isArray(points)) return;
    const rows = {
      user: [...chat.querySelectorAll('.message-row.user-row')],
      assistant: [...chat.querySelectorAll('.message-row.bot-row')],
    };
    const wanted = {
      user: points.filter((p) => p.role === 'user'),
      assistant: points.filter((p) => p.role === 'assistant'),
    };
    // while an answer streams the rows run ahead of the saved path: draw nothing until they agree
    const fits = ['user', 'assistant'].every((r) => rows[r].length === wanted[r].length);
    if (!fits) { chat.querySelectorAll('.hearth-branch-nav').forEach((n) => n.remove()); return; }
    for (const role of ['user', 'assistant']) {
      wanted[role].forEach((p, i) => {
        const holder = rows[role][i].querySelector('.flex-wrap') || rows[role][i];
        const old = holder.querySelector(':scope > .hearth-branch-nav');
        if (old && old.dataset.key === [p.id, p.pos, p.total].join(':')) return;
        if (old) old.remove();
        holder.append(nav(p));
      });
    }
  };
  // the chatbot changed (window.hearthChatChanged, stamped by a browser-only event): fetch the
  // path once it has been still for a moment, so a streaming answer costs no request per update
  let asked = 0;
  const refresh = () => {
    const changed = window.hearthChatChanged || 0;
    if (changed > asked && Date.now() - changed >= 200) {
      asked = changed;
      document.querySelector('#branch-refresh')?.click();
    }
  };
  setInterval(() => { refresh(); decorate(); }, 250);
}
"""
#: stamps each change of the chatbot for the arrows' script; runs in the browser only
CHANGED_JS = "() => { window.hearthChatChanged = Date.now(); }"
#: the hidden button's event passes the id the script stored (the textbox value is a fallback)
TARGET_JS = "(cid, target) => [cid, window.hearthBranchTarget || target]"


@dataclass(frozen=True)
class BranchNav:
    data: gr.Textbox
    target: gr.Textbox
    go: gr.Button
    fork: gr.Button
    refresh: gr.Button


@dataclass(frozen=True)
class FilesBox:
    export_json: gr.Button
    export_md: gr.Button
    download: gr.File
    upload: gr.File
    note: gr.Markdown


def build_branch_nav() -> BranchNav:
    """Hidden parts the arrows' script talks to; call under the chatbot."""
    hidden = ["hearth-hidden"]
    return BranchNav(
        data=gr.Textbox(
            value="[]", elem_id="branch-data", elem_classes=hidden, show_label=False, container=False
        ),
        target=gr.Textbox(elem_id="branch-target", elem_classes=hidden, show_label=False, container=False),
        go=gr.Button("switch branch", elem_id="branch-go", elem_classes=hidden),
        fork=gr.Button("fork", elem_id="branch-fork", elem_classes=hidden),
        refresh=gr.Button("refresh branches", elem_id="branch-refresh", elem_classes=hidden),
    )


def build_files_box() -> FilesBox:
    """Export / import of conversations; call in the sidebar."""
    with gr.Accordion("⇅ Export / import", open=False):
        with gr.Row():
            export_json = gr.Button("Export JSON", size="sm", elem_id="export-json")
            export_md = gr.Button("Export Markdown", size="sm", elem_id="export-md")
        download = gr.File(label="Exported file", interactive=False, elem_id="export-file")
        upload = gr.File(
            label="Import a JSON export", file_types=[".json"], type="filepath", elem_id="import-file"
        )
        note = gr.Markdown(elem_id="files-note")
    return FilesBox(export_json=export_json, export_md=export_md, download=download, upload=upload, note=note)


def wire_branches(
    services: Services,
    demo: gr.Blocks,
    nav: BranchNav,
    files: FilesBox,
    *,
    chatbot: gr.Chatbot,
    conversation_id: gr.State,
    system_prompt: gr.Textbox,
    refresh_list: Callable[..., Any],
    list_io: tuple[list[Any], Any],
) -> None:
    """Events: arrows, forks, files; the arrows follow whatever the chatbot shows.

    The chatbot's change event stays in the browser (a request per streamed update cost a page
    answer a fifth of its tokens/s here); the script asks for the path once the chat is still."""
    s = services
    demo.load(None, None, None, js=NAV_JS)
    chatbot.change(None, None, None, js=CHANGED_JS, queue=False, show_progress="hidden")
    nav.refresh.click(
        partial(bh.branch_data, s),
        [conversation_id],
        nav.data,
        queue=False,
        show_progress="hidden",
        trigger_mode="always_last",
    )
    nav.go.click(
        partial(bh.switch_branch, s), [conversation_id, nav.target], [chatbot, nav.data], js=TARGET_JS
    )
    nav.fork.click(
        partial(bh.fork_from, s),
        [conversation_id, nav.target],
        [chatbot, conversation_id, system_prompt, nav.data],
        js=TARGET_JS,
    ).then(refresh_list, *list_io)
    files.export_json.click(
        partial(bh.export_file, s, markdown=False), [conversation_id], [files.download, files.note]
    )
    files.export_md.click(
        partial(bh.export_file, s, markdown=True), [conversation_id], [files.download, files.note]
    )
    files.upload.upload(
        partial(bh.import_file, s),
        [files.upload],
        [chatbot, conversation_id, system_prompt, nav.data, files.note],
    ).then(refresh_list, *list_io)
