"""AMHS, the ATS Message Handling Service of ICAO Doc 9880 Part II: ATS message priorities
and headers, AFTN addresses and their XF and CAAS O/R addresses, and the AFTN message format
of Annex 10 Volume II with its conversion to and from AMHS. Sans-I/O, like waypost.mixer."""
