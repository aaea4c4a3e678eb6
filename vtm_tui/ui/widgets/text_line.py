"""A fixed-size block of text that repaints without a layout pass.

`Static.update` always asks for a layout of the whole screen, which costs tens of
milliseconds here; these lines change several times a second (durations, progress, server
state), so they repaint only, and only when the text really changed.
"""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class TextLine(Widget):
    DEFAULT_CSS = """
    TextLine {
        height: 1;
        width: 1fr;
        color: $foreground;  /* a rendered Text takes its colour from CSS, and the screen sets none */
    }
    """

    text: reactive[Text] = reactive(Text, layout=False)

    def __init__(self, text: Text | str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(TextLine.text, Text(text) if isinstance(text, str) else text)

    def update(self, text: Text | str) -> None:
        self.text = Text(text) if isinstance(text, str) else text  # equal text: no repaint

    def render(self) -> Text:
        return self.text
