"""Training views: what the encoders see during pre-training.

- :mod:`reiqa.views.quality`: quality-aware views (versions x scales, overlapping crop pairs).
- :mod:`reiqa.views.content`: content views (MoCo-v2 augmentation B).
"""

from reiqa.views.content import ContentViewConfig, ContentViews
from reiqa.views.quality import QualityViewConfig, QualityViews

__all__ = ["ContentViewConfig", "ContentViews", "QualityViewConfig", "QualityViews"]
