// slice placeholder
