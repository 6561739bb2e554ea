CREATE TABLE `mcp_servers` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text,
	`name` text NOT NULL,
	`transport` text NOT NULL,
	`command` text,
	`args` text DEFAULT '[]' NOT NULL,
	`env` text,
	`env_keys` text DEFAULT '[]' NOT NULL,
	`url` text,
	`headers` text,
	`header_keys` text DEFAULT '[]' NOT NULL,
	`user_vars` text DEFAULT '[]' NOT NULL,
	`enabled` integer DEFAULT true NOT NULL,
	`category` text,
	`description` text,
	`timeout_ms` integer DEFAULT 60000 NOT NULL,
	`requires_approval` integer DEFAULT false NOT NULL,
	`status` text DEFAULT 'unknown' NOT NULL,
	`last_error` text,
	`tools_count` integer DEFAULT 0 NOT NULL,
	`tools` text,
	`tools_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `mcp_servers_global_name_uq` ON `mcp_servers` (lower("name")) WHERE user_id IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `mcp_servers_personal_name_uq` ON `mcp_servers` (`user_id`,lower("name")) WHERE user_id IS NOT NULL;--> statement-breakpoint
CREATE TABLE `mcp_user_vars` (
	`server_id` text NOT NULL,
	`user_id` text NOT NULL,
	`values` text NOT NULL,
	`keys` text DEFAULT '[]' NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`server_id`, `user_id`),
	FOREIGN KEY (`server_id`) REFERENCES `mcp_servers`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `tool_logs` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`tool` text NOT NULL,
	`server_id` text,
	`arguments` text,
	`result_preview` text,
	`is_error` integer DEFAULT false NOT NULL,
	`duration_ms` integer DEFAULT 0 NOT NULL,
	`source` text NOT NULL,
	`conversation_id` text,
	`task_id` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `tool_logs_user_created_idx` ON `tool_logs` (`user_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `tool_logs_created_idx` ON `tool_logs` (`created_at`);--> statement-breakpoint
DROP INDEX `configs_group_name_uq`;--> statement-breakpoint
ALTER TABLE `configs` ADD `user_id` text REFERENCES users(id) ON DELETE cascade;--> statement-breakpoint
CREATE UNIQUE INDEX `configs_global_uq` ON `configs` (`config_group`,`config_name`) WHERE user_id IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `configs_personal_uq` ON `configs` (`user_id`,`config_group`,`config_name`) WHERE user_id IS NOT NULL;--> statement-breakpoint
ALTER TABLE `conversations` ADD `tools` text DEFAULT '[]' NOT NULL;