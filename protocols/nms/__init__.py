"""Network management (NMS) fault feed: interface rows -> fault events -> announcements, pure."""
