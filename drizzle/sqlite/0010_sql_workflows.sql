CREATE TABLE `connections` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text,
	`name` text NOT NULL,
	`driver` text NOT NULL,
	`host` text,
	`port` integer,
	`database` text,
	`username` text,
	`password` text,
	`ssl` integer DEFAULT false NOT NULL,
	`file_id` text,
	`path` text,
	`is_default` integer DEFAULT false NOT NULL,
	`is_connected` integer DEFAULT false NOT NULL,
	`last_tested_at` integer,
	`last_error` text,
	`schema_cache` text,
	`schema_fetched_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`file_id`) REFERENCES `files`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `connections_global_name_uq` ON `connections` (lower("name")) WHERE user_id IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `connections_personal_name_uq` ON `connections` (`user_id`,lower("name")) WHERE user_id IS NOT NULL;--> statement-breakpoint
CREATE TABLE `prompts` (
	`user_id` text NOT NULL,
	`name` text NOT NULL,
	`content` text NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`user_id`, `name`),
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `services` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`kind` text DEFAULT 'comfyui' NOT NULL,
	`url` text NOT NULL,
	`description` text,
	`status` text DEFAULT 'unknown' NOT NULL,
	`response_time_ms` integer,
	`version` text,
	`last_error` text,
	`last_check_time` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `services_name_uq` ON `services` (lower("name"));--> statement-breakpoint
CREATE TABLE `session_messages` (
	`id` text PRIMARY KEY NOT NULL,
	`session_id` text NOT NULL,
	`role` text NOT NULL,
	`content` text DEFAULT '' NOT NULL,
	`status` text DEFAULT 'complete' NOT NULL,
	`metadata` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`session_id`) REFERENCES `workflow_sessions`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `session_messages_session_created_idx` ON `session_messages` (`session_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `workflow_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`workflow_id` text NOT NULL,
	`agent_id` text,
	`title` text,
	`status` text DEFAULT 'active' NOT NULL,
	`last_message_summary` text,
	`message_count` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`workflow_id`) REFERENCES `workflows`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`agent_id`) REFERENCES `agents`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `workflow_sessions_user_updated_idx` ON `workflow_sessions` (`user_id`,`updated_at`);--> statement-breakpoint
CREATE INDEX `workflow_sessions_workflow_idx` ON `workflow_sessions` (`workflow_id`);--> statement-breakpoint
CREATE TABLE `workflow_versions` (
	`id` text PRIMARY KEY NOT NULL,
	`workflow_id` text NOT NULL,
	`version` integer NOT NULL,
	`workflow_data` text NOT NULL,
	`note` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`workflow_id`) REFERENCES `workflows`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `workflow_versions_workflow_version_uq` ON `workflow_versions` (`workflow_id`,`version`);--> statement-breakpoint
CREATE TABLE `workflows` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`service_id` text,
	`name` text NOT NULL,
	`description` text,
	`workflow_data` text NOT NULL,
	`is_favorite` integer DEFAULT false NOT NULL,
	`current_version` integer DEFAULT 1 NOT NULL,
	`last_used_at` integer,
	`locked_by` text,
	`locked_reason` text,
	`locked_since` integer,
	`locked_until` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`service_id`) REFERENCES `services`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `workflows_user_updated_idx` ON `workflows` (`user_id`,`updated_at`);--> statement-breakpoint
CREATE INDEX `workflows_service_idx` ON `workflows` (`service_id`);--> statement-breakpoint
ALTER TABLE `conversations` ADD `connection_id` text REFERENCES connections(id) ON DELETE set null;