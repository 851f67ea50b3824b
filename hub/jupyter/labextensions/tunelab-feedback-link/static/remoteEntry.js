// Fine-Tuning Lab class hub: nbgrader's "(view feedback)" opens the feedback page.
//
// Why: nbgrader 0.9.6's Assignment List runs `filebrowser:go-to-path` on the feedback
// folder (ASSIGNMENT/feedback/TIMESTAMP), which only moves the file browser; students
// looked for a page that never opened. This plugin lets that command run as before and
// then opens every feedback page in the folder in JupyterLab's HTML viewer.
//
// A JupyterLab federated extension written by hand (no build step, no shared modules):
// JupyterLab loads this file and asks the container for "./extension", whose default
// export is the plugin list. Installed for the hub's users through JUPYTER_PATH
// (hub/jupyterhub_config.py).
(function () {
  'use strict';
  var FEEDBACK_FOLDER = /(^|\/)feedback\/[^/]+\/?$/;

  function openPages(app, execute, folder) {
    return app.serviceManager.contents.get(folder, { content: true }).then(function (model) {
      var pages = (model.content || []).filter(function (item) {
        return item.type === 'file' && /\.html$/.test(item.name);
      });
      return Promise.all(pages.map(function (item) {
        return execute('docmanager:open', { path: item.path, factory: 'HTML Viewer' });
      }));
    });
  }

  var plugin = {
    id: 'tunelab-feedback-link:plugin',
    description: "nbgrader's (view feedback) opens the feedback page",
    autoStart: true,
    activate: function (app) {
      var commands = app.commands;
      var execute = commands.execute.bind(commands);
      commands.execute = function (id, args) {
        var path = args && typeof args.path === 'string' ? args.path : '';
        var done = execute(id, args);
        if (id !== 'filebrowser:go-to-path' || !FEEDBACK_FOLDER.test(path)) {
          return done;
        }
        var folder = path.replace(/\/$/, '');
        return done.then(function (result) {
          return openPages(app, execute, folder).then(function () { return result; });
        }).catch(function (error) {
          console.error('tunelab-feedback-link: cannot open the feedback in ' + folder, error);
          throw error;
        });
      };
    }
  };

  var registry = (window._JUPYTERLAB = window._JUPYTERLAB || {});
  registry['tunelab-feedback-link'] = {
    init: function () { return Promise.resolve(); },
    get: function (module) {
      if (module !== './extension') {
        return Promise.reject(new Error('tunelab-feedback-link has no module ' + module));
      }
      return Promise.resolve(function () { return { __esModule: true, default: [plugin] }; });
    }
  };
})();
