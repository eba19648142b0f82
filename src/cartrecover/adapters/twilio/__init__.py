"""SMS through Twilio's REST API (or anything that speaks it)."""

from cartrecover.adapters.twilio.sender import TwilioSender

__all__ = ["TwilioSender"]
