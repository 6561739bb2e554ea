CREATE TABLE `bus_payloads` (
	`id` text PRIMARY KEY NOT NULL,
	`channel` text NOT NULL,
	`payload` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `bus_payloads_created_at_idx` ON `bus_payloads` (`created_at`);