"""X.400: the BER codec, P1 (X.411) envelopes and APDUs, IPM content, associations."""
