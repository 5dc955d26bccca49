"""The station's one-window flow (docs/station-flow.md): registration, lane dispatch, the
handheld manual inspection, the chief inspector's review and report, the owner's
progress link, and the accounts that do it, as web pages of the station server."""
