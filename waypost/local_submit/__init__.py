"""Local submission, as Postfix's postdrop and pickup: `waypost-sendmail` drops a file into
the world-writable maildrop, and the running MTA's pickup takes it through the intake."""
