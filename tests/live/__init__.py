"""Tests of the WebRTC media relay (live/)."""
