"""A pure renderer of a patient's course as an accessible, black-and-white-printable inline SVG.

data.py reads the visits, layout.py places things, words.py says them, svg.py and panels.py
write the markup and chart.py puts the chart together.
"""

from myoguide.adapters.web.timeline.chart import timeline_svg
from myoguide.adapters.web.timeline.data import VisitPoint
from myoguide.adapters.web.timeline.svg import STYLE

__all__ = ["STYLE", "VisitPoint", "timeline_svg"]
