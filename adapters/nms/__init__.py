"""The NMS fault feed (docs/nms.md): the NMS interface table -> fault announcements on the bus."""
