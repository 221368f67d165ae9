/// The OpenAPI 3.1 description of the admin API, served at `/api/v1/openapi.json`. Kept in the binary (not a
/// resource bundle) so that an installed `petrel` serves it wherever it is copied to. Keep it in step with the
/// routes and `Representations.swift`: Tests/PetrelServerTests/Admin checks that every route is in it, and the
/// interop test runs schemathesis against it.
enum OpenAPIDocument {
    static let json = ##"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Petrel admin API",
    "version": "1",
    "description": "Operators' API of the Petrel MQTT broker, on the `--http` listener. Every endpoint but this document needs `Authorization: Bearer <token>`, the token being the content of `--admin-token-file`. Lists are paged with `limit` (1 to 1000, default 100) and `offset`, and report the `total` after filtering. Errors are `{\"error\": \"...\", \"field\": \"...\"}`."
  },
  "servers": [
    {
      "url": "/"
    }
  ],
  "security": [
    {
      "bearerAuth": []
    }
  ],
  "tags": [
    {
      "name": "clients"
    },
    {
      "name": "sessions"
    },
    {
      "name": "subscriptions"
    },
    {
      "name": "retained"
    },
    {
      "name": "publish"
    },
    {
      "name": "configuration"
    }
  ],
  "paths": {
    "/api/v1/openapi.json": {
      "get": {
        "summary": "This document",
        "operationId": "getOpenAPI",
        "responses": {
          "200": {
            "description": "The OpenAPI document",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "security": []
      }
    },
    "/api/v1/clients": {
      "get": {
        "summary": "List connected clients",
        "operationId": "listClients",
        "responses": {
          "200": {
            "description": "A page of connected clients, sorted by client identifier",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "items",
                    "total",
                    "limit",
                    "offset"
                  ],
                  "properties": {
                    "items": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/ClientSummary"
                      }
                    },
                    "total": {
                      "type": "integer",
                      "minimum": 0,
                      "description": "Entries in the whole list, after the filter."
                    },
                    "limit": {
                      "type": "integer",
                      "minimum": 1,
                      "maximum": 1000
                    },
                    "offset": {
                      "type": "integer",
                      "minimum": 0
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "clients"
        ],
        "parameters": [
          {
            "$ref": "#/components/parameters/limit"
          },
          {
            "$ref": "#/components/parameters/offset"
          },
          {
            "$ref": "#/components/parameters/filter"
          }
        ]
      }
    },
    "/api/v1/clients/{client_id}": {
      "parameters": [
        {
          "$ref": "#/components/parameters/client_id"
        }
      ],
      "get": {
        "summary": "One connected client",
        "operationId": "getClient",
        "responses": {
          "200": {
            "description": "The client and its session",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Session"
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "clients"
        ]
      },
      "delete": {
        "summary": "Disconnect a client",
        "operationId": "disconnectClient",
        "responses": {
          "204": {
            "description": "The client is being disconnected: an MQTT 5 client gets DISCONNECT 0x98 (Administrative action), then the connection closes; its will is published; its session stays for its expiry interval."
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "clients"
        ]
      }
    },
    "/api/v1/sessions": {
      "get": {
        "summary": "List sessions, connected or not",
        "operationId": "listSessions",
        "responses": {
          "200": {
            "description": "A page of sessions, sorted by client identifier",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "items",
                    "total",
                    "limit",
                    "offset"
                  ],
                  "properties": {
                    "items": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Session"
                      }
                    },
                    "total": {
                      "type": "integer",
                      "minimum": 0,
                      "description": "Entries in the whole list, after the filter."
                    },
                    "limit": {
                      "type": "integer",
                      "minimum": 1,
                      "maximum": 1000
                    },
                    "offset": {
                      "type": "integer",
                      "minimum": 0
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "sessions"
        ],
        "parameters": [
          {
            "$ref": "#/components/parameters/limit"
          },
          {
            "$ref": "#/components/parameters/offset"
          },
          {
            "$ref": "#/components/parameters/filter"
          },
          {
            "name": "connected",
            "in": "query",
            "required": false,
            "description": "Only connected (`true`) or only disconnected (`false`) sessions.",
            "schema": {
              "type": "string",
              "enum": [
                "true",
                "false"
              ]
            }
          }
        ]
      }
    },
    "/api/v1/sessions/{client_id}": {
      "parameters": [
        {
          "$ref": "#/components/parameters/client_id"
        }
      ],
      "get": {
        "summary": "One session",
        "operationId": "getSession",
        "responses": {
          "200": {
            "description": "The session",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Session"
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "sessions"
        ]
      },
      "delete": {
        "summary": "Remove a session",
        "operationId": "deleteSession",
        "responses": {
          "204": {
            "description": "The session is gone (subscriptions, queued messages, stored state); a connected client was disconnected with DISCONNECT 0x98 first."
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "sessions"
        ]
      }
    },
    "/api/v1/subscriptions": {
      "get": {
        "summary": "List subscriptions",
        "operationId": "listSubscriptions",
        "responses": {
          "200": {
            "description": "A page of subscriptions, sorted by client identifier then filter",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "items",
                    "total",
                    "limit",
                    "offset"
                  ],
                  "properties": {
                    "items": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Subscription"
                      }
                    },
                    "total": {
                      "type": "integer",
                      "minimum": 0,
                      "description": "Entries in the whole list, after the filter."
                    },
                    "limit": {
                      "type": "integer",
                      "minimum": 1,
                      "maximum": 1000
                    },
                    "offset": {
                      "type": "integer",
                      "minimum": 0
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "subscriptions"
        ],
        "parameters": [
          {
            "$ref": "#/components/parameters/limit"
          },
          {
            "$ref": "#/components/parameters/offset"
          },
          {
            "name": "filter",
            "in": "query",
            "required": false,
            "description": "Keep subscriptions whose filter or client identifier contains this text.",
            "schema": {
              "type": "string"
            }
          }
        ]
      }
    },
    "/api/v1/topics": {
      "get": {
        "summary": "List subscribed topic filters with their subscriber counts",
        "operationId": "listTopics",
        "responses": {
          "200": {
            "description": "A page of filters, sorted",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "items",
                    "total",
                    "limit",
                    "offset"
                  ],
                  "properties": {
                    "items": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Topic"
                      }
                    },
                    "total": {
                      "type": "integer",
                      "minimum": 0,
                      "description": "Entries in the whole list, after the filter."
                    },
                    "limit": {
                      "type": "integer",
                      "minimum": 1,
                      "maximum": 1000
                    },
                    "offset": {
                      "type": "integer",
                      "minimum": 0
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "subscriptions"
        ],
        "parameters": [
          {
            "$ref": "#/components/parameters/limit"
          },
          {
            "$ref": "#/components/parameters/offset"
          },
          {
            "name": "filter",
            "in": "query",
            "required": false,
            "description": "Keep filters containing this text.",
            "schema": {
              "type": "string"
            }
          }
        ]
      }
    },
    "/api/v1/retained": {
      "get": {
        "summary": "List retained messages",
        "operationId": "listRetained",
        "responses": {
          "200": {
            "description": "A page of retained messages, sorted by topic",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "required": [
                    "items",
                    "total",
                    "limit",
                    "offset"
                  ],
                  "properties": {
                    "items": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/RetainedMessage"
                      }
                    },
                    "total": {
                      "type": "integer",
                      "minimum": 0,
                      "description": "Entries in the whole list, after the filter."
                    },
                    "limit": {
                      "type": "integer",
                      "minimum": 1,
                      "maximum": 1000
                    },
                    "offset": {
                      "type": "integer",
                      "minimum": 0
                    }
                  }
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "retained"
        ],
        "parameters": [
          {
            "$ref": "#/components/parameters/limit"
          },
          {
            "$ref": "#/components/parameters/offset"
          },
          {
            "name": "filter",
            "in": "query",
            "required": false,
            "description": "An MQTT topic filter (`+`, `#`): the messages a subscription to it would receive (so `#` leaves out `$` topics). Without it, every retained message. A `+` in the query is the wildcard (RFC 3986), not a space: write a space as `%20`.",
            "schema": {
              "type": "string",
              "minLength": 1,
              "pattern": "^(?!\\$share/)((\\+|[^/+#\\u0000]*)/)*(\\+|#|[^/+#\\u0000]*)$"
            }
          }
        ]
      }
    },
    "/api/v1/retained/{topic}": {
      "parameters": [
        {
          "name": "topic",
          "in": "path",
          "required": true,
          "description": "The topic name; its levels may stand in the path as they are (`/api/v1/retained/home/kitchen/temp`) or percent-encoded (`%2F`).",
          "schema": {
            "type": "string",
            "minLength": 1,
            "pattern": "^[^+#\\u0000]+$"
          }
        }
      ],
      "get": {
        "summary": "One retained message",
        "operationId": "getRetained",
        "responses": {
          "200": {
            "description": "The retained message",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/RetainedMessage"
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "retained"
        ]
      },
      "delete": {
        "summary": "Delete a retained message",
        "operationId": "deleteRetained",
        "responses": {
          "204": {
            "description": "Deleted, from the store too."
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "retained"
        ]
      }
    },
    "/api/v1/publish": {
      "post": {
        "summary": "Publish a message",
        "operationId": "publish",
        "responses": {
          "200": {
            "description": "Routed to the matching subscriptions (and retained when asked)",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/PublishResult"
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "The request body is too large.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "publish"
        ],
        "description": "Routed like a client's message: each subscriber gets it at the lower of `qos` and its subscription's QoS, and its access rules apply. `retain` with an empty payload deletes the topic's retained message.",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/PublishRequest"
              }
            }
          }
        }
      }
    },
    "/api/v1/config": {
      "get": {
        "summary": "The effective configuration",
        "operationId": "getConfiguration",
        "responses": {
          "200": {
            "description": "The options the broker runs with; secrets are shown as \"***\", file contents never",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "configuration"
        ]
      }
    },
    "/api/v1/log-level": {
      "get": {
        "summary": "The log level",
        "operationId": "getLogLevel",
        "responses": {
          "200": {
            "description": "The level every log handler follows",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LogLevel"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "configuration"
        ]
      },
      "put": {
        "summary": "Set the log level",
        "operationId": "setLogLevel",
        "responses": {
          "200": {
            "description": "The new level, in force at once",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/LogLevel"
                }
              }
            }
          },
          "400": {
            "description": "A bad request: `field` names the parameter or body member that was wrong.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "401": {
            "description": "No `Authorization: Bearer <token>` header, or a wrong token (counted in `petrel_admin_unauthorized_total`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "404": {
            "description": "Nothing of that name, or the admin API is off (no `--admin-token-file`).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          },
          "413": {
            "description": "The request body is too large.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            }
          }
        },
        "tags": [
          "configuration"
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/LogLevel"
              }
            }
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "The content of `--admin-token-file`."
      }
    },
    "parameters": {
      "limit": {
        "name": "limit",
        "in": "query",
        "required": false,
        "description": "Entries per page.",
        "schema": {
          "type": "integer",
          "minimum": 1,
          "maximum": 1000,
          "default": 100
        }
      },
      "offset": {
        "name": "offset",
        "in": "query",
        "required": false,
        "description": "Entries skipped.",
        "schema": {
          "type": "integer",
          "minimum": 0,
          "default": 0
        }
      },
      "filter": {
        "name": "filter",
        "in": "query",
        "required": false,
        "description": "Keep entries whose client identifier, user name or address contains this text.",
        "schema": {
          "type": "string"
        }
      },
      "client_id": {
        "name": "client_id",
        "in": "path",
        "required": true,
        "description": "The client identifier, percent-encoded.",
        "schema": {
          "type": "string"
        }
      }
    },
    "schemas": {
      "Error": {
        "type": "object",
        "required": [
          "error"
        ],
        "properties": {
          "error": {
            "type": "string",
            "description": "What was wrong."
          },
          "field": {
            "type": "string",
            "description": "The query parameter, path parameter or body member that was wrong."
          }
        }
      },
      "SubscriptionOptions": {
        "type": "object",
        "required": [
          "qos",
          "no_local",
          "retain_as_published",
          "retain_handling"
        ],
        "properties": {
          "qos": {
            "type": "integer",
            "enum": [
              0,
              1,
              2
            ],
            "description": "The granted QoS."
          },
          "no_local": {
            "type": "boolean"
          },
          "retain_as_published": {
            "type": "boolean"
          },
          "retain_handling": {
            "type": "integer",
            "enum": [
              0,
              1,
              2
            ]
          }
        }
      },
      "Subscription": {
        "type": "object",
        "required": [
          "client_id",
          "filter",
          "options",
          "subscription_identifier"
        ],
        "properties": {
          "client_id": {
            "type": "string"
          },
          "filter": {
            "type": "string",
            "description": "As subscribed; `$share/{name}/` included for a shared subscription."
          },
          "options": {
            "$ref": "#/components/schemas/SubscriptionOptions"
          },
          "subscription_identifier": {
            "type": [
              "integer",
              "null"
            ],
            "minimum": 1,
            "maximum": 268435455
          }
        }
      },
      "ClientSummary": {
        "type": "object",
        "required": [
          "client_id",
          "username",
          "address",
          "listener",
          "protocol_version",
          "keep_alive",
          "clean_start",
          "subscriptions",
          "inflight_messages",
          "queued_messages"
        ],
        "properties": {
          "client_id": {
            "type": "string"
          },
          "username": {
            "type": [
              "string",
              "null"
            ]
          },
          "address": {
            "type": "string",
            "description": "The client's address and port."
          },
          "listener": {
            "type": "string",
            "enum": [
              "mqtt",
              "mqtts",
              "ws",
              "wss"
            ]
          },
          "protocol_version": {
            "type": "string",
            "enum": [
              "3.1",
              "3.1.1",
              "5"
            ]
          },
          "keep_alive": {
            "type": "integer",
            "minimum": 0,
            "maximum": 65535,
            "description": "Seconds, as in force (Server Keep Alive included); 0 is off."
          },
          "clean_start": {
            "type": "boolean"
          },
          "subscriptions": {
            "type": "integer",
            "minimum": 0
          },
          "inflight_messages": {
            "type": "integer",
            "minimum": 0
          },
          "queued_messages": {
            "type": "integer",
            "minimum": 0
          }
        }
      },
      "Connection": {
        "type": "object",
        "required": [
          "address",
          "listener",
          "keep_alive",
          "clean_start"
        ],
        "properties": {
          "address": {
            "type": "string"
          },
          "listener": {
            "type": "string",
            "enum": [
              "mqtt",
              "mqtts",
              "ws",
              "wss"
            ]
          },
          "keep_alive": {
            "type": "integer",
            "minimum": 0,
            "maximum": 65535
          },
          "clean_start": {
            "type": "boolean"
          }
        }
      },
      "Session": {
        "type": "object",
        "required": [
          "client_id",
          "username",
          "connected",
          "connection",
          "protocol_version",
          "session_expiry_interval",
          "expires_in_seconds",
          "subscriptions",
          "inflight_messages",
          "inflight_maximum",
          "queued_messages",
          "queued_bytes",
          "has_will"
        ],
        "properties": {
          "client_id": {
            "type": "string"
          },
          "username": {
            "type": [
              "string",
              "null"
            ]
          },
          "connected": {
            "type": "boolean"
          },
          "connection": {
            "oneOf": [
              {
                "$ref": "#/components/schemas/Connection"
              },
              {
                "type": "null"
              }
            ],
            "description": "The connected client's connection; null while none is."
          },
          "protocol_version": {
            "type": "string",
            "enum": [
              "3.1",
              "3.1.1",
              "5"
            ]
          },
          "session_expiry_interval": {
            "type": [
              "integer",
              "null"
            ],
            "minimum": 0,
            "description": "Seconds the session outlives its connection; null: never expires."
          },
          "expires_in_seconds": {
            "type": [
              "integer",
              "null"
            ],
            "minimum": 0,
            "description": "Seconds left for a disconnected session; null while connected or when it never expires."
          },
          "subscriptions": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Subscription"
            }
          },
          "inflight_messages": {
            "type": "integer",
            "minimum": 0,
            "description": "QoS 1 and 2 messages sent and not acknowledged."
          },
          "inflight_maximum": {
            "type": "integer",
            "minimum": 1
          },
          "queued_messages": {
            "type": "integer",
            "minimum": 0
          },
          "queued_bytes": {
            "type": "integer",
            "minimum": 0
          },
          "has_will": {
            "type": "boolean"
          }
        }
      },
      "Topic": {
        "type": "object",
        "required": [
          "filter",
          "subscribers"
        ],
        "properties": {
          "filter": {
            "type": "string"
          },
          "subscribers": {
            "type": "integer",
            "minimum": 1
          }
        }
      },
      "RetainedMessage": {
        "type": "object",
        "required": [
          "topic",
          "qos",
          "payload",
          "payload_base64",
          "payload_bytes",
          "content_type"
        ],
        "properties": {
          "topic": {
            "type": "string"
          },
          "qos": {
            "type": "integer",
            "enum": [
              0,
              1,
              2
            ]
          },
          "payload": {
            "type": [
              "string",
              "null"
            ],
            "description": "The payload as text; null when it is not valid UTF-8."
          },
          "payload_base64": {
            "type": "string",
            "contentEncoding": "base64"
          },
          "payload_bytes": {
            "type": "integer",
            "minimum": 0
          },
          "content_type": {
            "type": [
              "string",
              "null"
            ],
            "description": "The MQTT 5 Content Type, when published with one."
          }
        }
      },
      "PublishRequest": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "topic"
        ],
        "not": {
          "required": [
            "payload",
            "payload_base64"
          ]
        },
        "description": "`payload` or `payload_base64`, not both; neither is an empty payload.",
        "properties": {
          "topic": {
            "type": "string",
            "minLength": 1,
            "pattern": "^[^+#\\u0000]+$",
            "description": "A topic name: no `+`, `#` or U+0000, at most 65,535 bytes."
          },
          "payload": {
            "type": "string",
            "description": "The payload as UTF-8 text."
          },
          "payload_base64": {
            "type": "string",
            "contentEncoding": "base64",
            "description": "The payload, base64; instead of `payload`."
          },
          "qos": {
            "type": "integer",
            "enum": [
              0,
              1,
              2
            ],
            "default": 0
          },
          "retain": {
            "type": "boolean",
            "default": false
          }
        }
      },
      "PublishResult": {
        "type": "object",
        "required": [
          "topic",
          "qos",
          "retain",
          "payload_bytes"
        ],
        "properties": {
          "topic": {
            "type": "string"
          },
          "qos": {
            "type": "integer",
            "enum": [
              0,
              1,
              2
            ]
          },
          "retain": {
            "type": "boolean"
          },
          "payload_bytes": {
            "type": "integer",
            "minimum": 0
          }
        }
      },
      "LogLevel": {
        "type": "object",
        "additionalProperties": false,
        "required": [
          "level"
        ],
        "properties": {
          "level": {
            "type": "string",
            "enum": [
              "trace",
              "debug",
              "info",
              "notice",
              "warning",
              "error",
              "critical"
            ]
          }
        }
      }
    }
  }
}
"""##
}
