"""The FTP password, asked in the TUI when the server wants one that neither VTM_FTP_PASSWORD nor
~/.netrc gives. Core's FTP backend calls the prompt from a worker thread; the dialog opens on the
app and the worker waits for the answer (or for its own cancellation). The answer is kept in
memory for this session only, and forgotten when the server refuses it, so the next read asks
again.
"""
from __future__ import annotations

import queue
import threading

from textual.widget import Widget
from textual.worker import get_current_worker

from vtm_tui.ui.screens.registry_dialogs import PasswordDialog


class PasswordPrompt:
    def __init__(self, owner: Widget, where: str) -> None:
        self.owner, self.where = owner, where  # owner: whose app shows the dialog
        self.answer: str | None = None
        self._lock = threading.Lock()  # a read and a transfer may both ask: one dialog

    def __call__(self) -> str:
        """The password (asking for it if there is none yet). From a worker thread only."""
        if self.answer:
            return self.answer
        from vtm_tui.core.registry import AuthError

        with self._lock:
            if self.answer:
                return self.answer
            app = self.owner.app
            answers: queue.Queue = queue.Queue()
            app.call_from_thread(app.push_screen, PasswordDialog(self.where), answers.put)
            worker = get_current_worker()
            while not worker.is_cancelled:
                try:
                    answer = answers.get(timeout=0.1)
                except queue.Empty:
                    continue
                if not answer:
                    break
                self.answer = answer
                return answer
            raise AuthError(f"{self.where}: no password given")

    def forget(self) -> None:
        """The server refused it: ask again next time."""
        self.answer = None
