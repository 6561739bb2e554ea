/** @module The plan types every instance starts with (seeded at start, read-only): `pet_diet`. */

export interface PlanTypeInput {
  id: string
  name: string
  description?: string | null
  inputSchema: Record<string, unknown>
  outputSchema: Record<string, unknown>
  prompt: string
}

const text = (description: string, maxLength = 500) => ({ type: 'string', minLength: 1, maxLength, description })
const list = (description: string) => ({ type: 'array', description, items: { type: 'string', minLength: 1 }, minItems: 1 })

const meal = {
  type: 'object',
  required: ['name', 'time', 'foods', 'portion'],
  properties: {
    name: text('e.g. Breakfast'),
    time: text('when to feed, e.g. 07:30', 50),
    foods: list('what to give'),
    portion: text('how much, in grams or cups'),
    calories_kcal: { type: 'number', minimum: 0 },
    notes: { type: 'string' },
  },
}

export const PET_DIET: PlanTypeInput = {
  id: 'pet_diet',
  name: 'Pet diet plan',
  description: "A daily diet plan for a pet from its type, breed, age, weight and health, with the reasoning behind it.",
  inputSchema: {
    type: 'object',
    required: ['pet_type', 'pet_breed', 'age', 'pet_weight', 'pet_health_status'],
    properties: {
      pet_type: text('the kind of animal: dog, cat, rabbit…', 100),
      pet_breed: text('the breed, or "mixed"', 100),
      age: { description: 'the age, in years (a number) or as words ("8 months")', anyOf: [{ type: 'number', minimum: 0, maximum: 100 }, text('the age in words', 100)] },
      pet_weight: { description: 'the weight, in kilograms (a number) or with its unit ("12 lb")', anyOf: [{ type: 'number', exclusiveMinimum: 0, maximum: 2000 }, text('the weight with its unit', 100)] },
      pet_health_status: text('health, conditions, allergies, activity level', 2000),
      special_requirements: { type: 'string', maxLength: 2000, description: 'preferences or constraints (grain-free, budget, raw feeding…)' },
    },
  },
  outputSchema: {
    type: 'object',
    required: ['pet_information', 'ai_suggestions', 'pet_diet_plan'],
    properties: {
      pet_information: {
        type: 'object',
        description: 'the pet as understood, with its estimated needs',
        required: ['pet_type', 'pet_breed', 'age', 'weight', 'health_status', 'daily_calories_kcal'],
        properties: {
          pet_type: { type: 'string' },
          pet_breed: { type: 'string' },
          age: { type: 'string' },
          weight: { type: 'string' },
          health_status: { type: 'string' },
          life_stage: { type: 'string' },
          daily_calories_kcal: { type: 'number', minimum: 0 },
        },
      },
      ai_suggestions: {
        type: 'object',
        required: ['summary', 'recommendations'],
        properties: {
          summary: text('two or three sentences on what this pet needs and why', 2000),
          recommendations: list('concrete advice, most important first'),
          foods_to_avoid: { type: 'array', items: { type: 'string' } },
          consult_vet: { type: 'boolean', description: 'whether a vet should be seen before changing the diet' },
        },
      },
      pet_diet_plan: {
        type: 'object',
        required: ['daily_meals', 'water'],
        properties: {
          daily_meals: { type: 'array', items: meal, minItems: 1 },
          treats: { type: 'string' },
          supplements: { type: 'array', items: { type: 'string' } },
          water: text('how much water and how to offer it'),
          transition: { type: 'string', description: 'how to move from the current food to this plan' },
        },
      },
    },
  },
  prompt: [
    'You are an experienced veterinary nutritionist. From the pet described in the input, write a safe, practical daily diet plan its owner can follow.',
    "Estimate the pet's daily energy needs from its species, breed, age (life stage), weight and activity, adjusted for its health status; state the estimate in pet_information.daily_calories_kcal.",
    "Take the health status and any special requirements seriously: allergies and conditions (kidney, diabetes, obesity, pancreatitis…) change what and how much to feed. Never suggest a food that is toxic to the species (for dogs and cats: grapes, raisins, onions, garlic, chocolate, xylitol, alcohol, caffeine, cooked bones).",
    'In ai_suggestions give a short summary and concrete recommendations, most important first; list foods to avoid; set consult_vet to true when a condition, a young or old age, or a large change of diet calls for a vet.',
    'In pet_diet_plan give each meal of the day with its time, foods and portion (grams, or cups for dry food), plus treats, supplements (only when useful), water and how to transition from the current food.',
    'Use metric units unless the input uses others. Write in the language of the input.',
  ].join('\n'),
}

export const BUILTIN_PLAN_TYPES: readonly PlanTypeInput[] = [PET_DIET]

/** A plan's title, from its type and input. */
export function planTitle(type: { id: string; name: string }, input: Record<string, unknown>): string {
  if (type.id === PET_DIET.id) {
    const pet = [input.pet_breed, input.pet_type].filter((v) => typeof v === 'string' && v.trim()).join(' ')
    if (pet) return `Diet plan for a ${pet}`.slice(0, 200)
  }
  return type.name.slice(0, 200)
}
