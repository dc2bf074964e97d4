"""The monitoring options as One API names them, with unigate's defaults."""

from __future__ import annotations

from unigate_auth.channel_tester import MONITOR_OPTION_DEFAULTS, MonitorOptions


def test_defaults_and_one_api_values() -> None:
    assert MonitorOptions.from_options({}) == MonitorOptions(5000, True, True)
    assert set(MONITOR_OPTION_DEFAULTS) == {
        "ChannelDisableThreshold",
        "AutomaticDisableChannelEnabled",
        "AutomaticEnableChannelEnabled",
    }
    set_ = MonitorOptions.from_options(
        {
            "ChannelDisableThreshold": "2.5",
            "AutomaticDisableChannelEnabled": "false",
            "AutomaticEnableChannelEnabled": "FALSE",
        }
    )
    assert set_ == MonitorOptions(2500, False, False)
    # 0: no response-time limit; nonsense falls back to the default, never disables all.
    assert MonitorOptions.from_options({"ChannelDisableThreshold": "0"}).threshold_ms == 0
    assert MonitorOptions.from_options({"ChannelDisableThreshold": "fast"}).threshold_ms == 5000
    assert MonitorOptions.from_options({"ChannelDisableThreshold": "-3"}).threshold_ms == 0
