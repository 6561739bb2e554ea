-- Full-text search over message text: a GIN index on the text's tsvector ('simple': no stemming, any language).
CREATE INDEX "messages_search_idx" ON "messages" USING gin (to_tsvector('simple', "content"));
