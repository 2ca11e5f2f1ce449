"""HTTP and WebSocket API of the live service: dependencies (:mod:`.deps`) and one router per topic (:mod:`.routes`)."""
