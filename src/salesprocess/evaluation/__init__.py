"""Performance evaluation: KPI scorecards, 360° reviews, the combined evaluation and training.

- A :class:`Scorecard` per role weighs KPIs, each normalised against its target (a goal, an
  explicit target or the role's default; higher or lower is better; capped), into a score, a
  rating band and a rank (:func:`score_reps`).
- :class:`Review` values from self, peers, the manager, direct reports and customers aggregate
  per competency with rater-group weights; a group with fewer raters than its minimum is hidden
  (:func:`aggregate_reviews`), and the self-vs-others gap shows blind spots.
- :func:`evaluate` combines both with configurable weights, lists strengths and weaknesses,
  recommends modules from a :class:`TrainingCatalog` that maps competencies and KPI gaps to
  modules, and follows up on the modules completed since the previous evaluation
  (:class:`TrainingRecord`).
"""

from __future__ import annotations

from ._combined import (
    EVALUATION_DOCUMENT,
    Evaluation,
    EvaluationConfig,
    EvaluationPolicy,
    FollowUp,
    Observation,
    evaluate,
    load_evaluations,
    save_evaluations,
)
from ._common import DEFAULT_BANDS, EvaluationError, RatingBand, band_for
from ._reviews import (
    REVIEW_DOCUMENT,
    Competency,
    CompetencyScore,
    GroupScore,
    RaterGroup,
    Review,
    ReviewPolicy,
    ReviewResult,
    aggregate_reviews,
    check_reviews,
    load_reviews,
    save_reviews,
)
from ._scorecard import (
    TRAINING_METRICS,
    ItemScore,
    Scorecard,
    ScorecardResult,
    ScoreItem,
    score_reps,
)
from ._training import (
    TRAINING_DOCUMENT,
    Recommendation,
    TrainingCatalog,
    TrainingModule,
    TrainingRecord,
    load_training_records,
    save_training_records,
)

__all__ = [
    "DEFAULT_BANDS",
    "EVALUATION_DOCUMENT",
    "REVIEW_DOCUMENT",
    "TRAINING_DOCUMENT",
    "TRAINING_METRICS",
    "Competency",
    "CompetencyScore",
    "Evaluation",
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationPolicy",
    "FollowUp",
    "GroupScore",
    "ItemScore",
    "Observation",
    "RaterGroup",
    "RatingBand",
    "Recommendation",
    "Review",
    "ReviewPolicy",
    "ReviewResult",
    "ScoreItem",
    "Scorecard",
    "ScorecardResult",
    "TrainingCatalog",
    "TrainingModule",
    "TrainingRecord",
    "aggregate_reviews",
    "band_for",
    "check_reviews",
    "evaluate",
    "load_evaluations",
    "load_reviews",
    "load_training_records",
    "save_evaluations",
    "save_reviews",
    "save_training_records",
    "score_reps",
]
