"""The MLflow Ops tab's list of experiments, and which one it shows after a (re)connect."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from vtm_tui.core.tracking.client import ExperimentInfo


def choose_experiment(experiments: list[ExperimentInfo], wanted: str | None,
                      current: ExperimentInfo | None) -> ExperimentInfo | None:
    """The experiment named `wanted` if there is one, else the one shown so far, else the first."""
    names = [exp.name for exp in experiments]
    name = wanted if wanted in names else current.name if current and current.name in names else \
        names[0] if names else None
    return experiments[names.index(name)] if name else None


class ExperimentList(OptionList):
    def show(self, experiments: list[ExperimentInfo], chosen: ExperimentInfo | None) -> None:
        with self.prevent(OptionList.OptionHighlighted):  # the list is set up, not browsed
            self.clear_options()
            self.add_options(Option(Text(exp.name, overflow="ellipsis"), id=exp.experiment_id)
                             for exp in experiments)
            if chosen:
                self.highlighted = experiments.index(chosen)
