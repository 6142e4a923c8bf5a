"""SQL (asyncpg) and message builders."""
