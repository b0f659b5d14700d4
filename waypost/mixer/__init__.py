"""The MIXER gateway's conversions between X.400 and Internet mail (RFC 2156, RFC 2157):
sans-I/O, given tables and objects, returning objects."""
