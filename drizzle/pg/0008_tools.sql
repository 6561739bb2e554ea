CREATE TABLE "mcp_servers" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text,
	"name" text NOT NULL,
	"transport" text NOT NULL,
	"command" text,
	"args" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"env" text,
	"env_keys" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"url" text,
	"headers" text,
	"header_keys" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"user_vars" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"category" text,
	"description" text,
	"timeout_ms" integer DEFAULT 60000 NOT NULL,
	"requires_approval" boolean DEFAULT false NOT NULL,
	"status" text DEFAULT 'unknown' NOT NULL,
	"last_error" text,
	"tools_count" integer DEFAULT 0 NOT NULL,
	"tools" jsonb,
	"tools_at" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "mcp_user_vars" (
	"server_id" text NOT NULL,
	"user_id" text NOT NULL,
	"values" text NOT NULL,
	"keys" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "mcp_user_vars_server_id_user_id_pk" PRIMARY KEY("server_id","user_id")
);
--> statement-breakpoint
CREATE TABLE "tool_logs" (
	"id" text PRIMARY KEY NOT NULL,
	"user_id" text NOT NULL,
	"tool" text NOT NULL,
	"server_id" text,
	"arguments" jsonb,
	"result_preview" text,
	"is_error" boolean DEFAULT false NOT NULL,
	"duration_ms" integer DEFAULT 0 NOT NULL,
	"source" text NOT NULL,
	"conversation_id" text,
	"task_id" text,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
DROP INDEX "configs_group_name_uq";--> statement-breakpoint
ALTER TABLE "configs" ADD COLUMN "user_id" text;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "tools" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "mcp_servers" ADD CONSTRAINT "mcp_servers_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mcp_user_vars" ADD CONSTRAINT "mcp_user_vars_server_id_mcp_servers_id_fk" FOREIGN KEY ("server_id") REFERENCES "public"."mcp_servers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mcp_user_vars" ADD CONSTRAINT "mcp_user_vars_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tool_logs" ADD CONSTRAINT "tool_logs_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_servers_global_name_uq" ON "mcp_servers" USING btree (lower("name")) WHERE user_id IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_servers_personal_name_uq" ON "mcp_servers" USING btree ("user_id",lower("name")) WHERE user_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "tool_logs_user_created_idx" ON "tool_logs" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "tool_logs_created_idx" ON "tool_logs" USING btree ("created_at");--> statement-breakpoint
ALTER TABLE "configs" ADD CONSTRAINT "configs_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "configs_global_uq" ON "configs" USING btree ("config_group","config_name") WHERE user_id IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "configs_personal_uq" ON "configs" USING btree ("user_id","config_group","config_name") WHERE user_id IS NOT NULL;