"""The live lane page: every lane's vehicle, steps, values, verdicts, brake curves and
device state, live on a phone (docs/live-page.md).

``LiveBoard`` keeps the state, ``follow`` feeds it from MQTT, ``LiveServer`` serves the
page and its server-sent event stream.
"""

from station.live.board import LiveBoard, Watch
from station.live.follow import follow, lane_filters
from station.live.server import LiveServer

__all__ = ["LiveBoard", "LiveServer", "Watch", "follow", "lane_filters"]
