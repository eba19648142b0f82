"""Deliver: render claimed steps and hand them to their channel; record what happened."""
