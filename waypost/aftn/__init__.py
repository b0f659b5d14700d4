"""The AFTN side of the AFTN/AMHS gateway: AFTN-over-TCP listeners whose messages become
AMHS messages (inbound.py); the delivery agent that sends AMHS messages to AFTN stations is
waypost.delivery.aftn."""
