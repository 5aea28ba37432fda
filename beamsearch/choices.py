"""The words a setting with a fixed set of values accepts, defined once for the settings model and for
the command line's choices (this module imports nothing, so `beamsearch --help` stays fast)."""

from __future__ import annotations

from typing import Literal

ProviderName = Literal["openai", "sim"]
AlignmentMethod = Literal["rating", "checklist"]
RankingMethod = Literal["scores", "pairwise"]
