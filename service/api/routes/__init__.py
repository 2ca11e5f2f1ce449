"""One APIRouter per topic: predict, health, models, streams, metrics (and ws, by the streams module)."""
