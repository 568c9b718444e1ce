/** Templates: htm's tagged templates bound to preact (no build step for JSX). */
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
