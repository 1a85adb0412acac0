"""Reservation service: owns events and answers reservation queries."""
